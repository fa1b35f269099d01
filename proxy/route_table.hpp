#pragma once
// The route table: an immutable value describing where traffic goes. The
// controller builds a new one and publishes it; workers read the current one
// once per request with a single atomic load (no lock, no refcount traffic).
#include "settings.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace releasectl::proxy {

class UpstreamTlsClient;

// Slots are fixed at startup and addressed by index everywhere on the data
// plane (pools, metric shards); names are for humans and headers.
inline constexpr std::size_t kMaxSlots = 8;

struct SlotRoute {
    std::string name;          // "blue", "green"
    UpstreamAddress upstream;
    std::uint32_t weight = 0;  // relative; the controller uses percentages
    std::string release;       // release id bound to the slot (for logs/metrics)
    // How to speak TLS to an https:// upstream (null for plain upstreams).
    std::shared_ptr<const UpstreamTlsClient> upstream_tls = nullptr;
};

struct RouteTable {
    std::uint64_t version = 0;             // set by the publisher
    std::vector<SlotRoute> slots;          // index == slot index, same order forever
    int live = -1;                         // slot index users are on
    int candidate = -1;                    // slot index being rolled out, or -1
    bool sticky = false;
    std::string sticky_cookie = "releasectl_bucket";
    std::string override_header = "X-Release-Slot";
    std::string override_cookie = "releasectl_slot";

    std::uint32_t total_weight() const;
    int slot_index(std::string_view name) const;
};

// Single writer (the controller thread, or the SIGHUP handler on it),
// many readers (workers). Old tables are reclaimed once every worker has
// been seen reading a newer one (epoch reclamation), so a reader never needs
// to hold a reference across an await.
class RouteTablePublisher {
public:
    explicit RouteTablePublisher(unsigned reader_count);

    // Publishes a copy of `table` with a fresh version. Visible to the very next
    // load() on any worker. Returns the version assigned.
    std::uint64_t publish(RouteTable table);

    // Reader side (worker `reader`): wait-free.
    const RouteTable& load(unsigned reader) noexcept {
        const RouteTable* t = current_.load(std::memory_order_acquire);
        seen_[reader].version.store(t->version, std::memory_order_release);
        return *t;
    }

    // Controller-side copy of what is published now.
    RouteTable current() const;

private:
    struct alignas(64) Seen { std::atomic<std::uint64_t> version{0}; };
    void reclaim_locked();

    std::atomic<const RouteTable*> current_{nullptr};
    std::unique_ptr<Seen[]> seen_;
    unsigned reader_count_;
    mutable std::mutex writer_mutex_; // writers only; readers never touch it
    std::deque<std::unique_ptr<const RouteTable>> retained_;
    std::uint64_t next_version_ = 1;
};

} // namespace releasectl::proxy
