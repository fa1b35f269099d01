#pragma once
// One writer publishes immutable values, N reader threads (workers) load them
// wait-free: a load is one atomic pointer read plus one store into the
// reader's own cache line. A published value is freed once every reader has
// been seen loading a newer one (epoch reclamation), so a reader may use what
// it loaded until its next load() without holding a reference. Readers that
// need a value longer (a TLS connection needs its certificates for its whole
// life) copy the shared_ptr: an atomic increment, never a lock.
//
// Same scheme as RouteTablePublisher, for values that are shared_ptr-owned.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>

namespace releasectl::proxy {

template <typename T>
class EpochPublisher {
public:
    explicit EpochPublisher(unsigned reader_count)
        : seen_(std::make_unique<Seen[]>(reader_count == 0 ? 1 : reader_count)),
          reader_count_(reader_count == 0 ? 1 : reader_count) {}
    EpochPublisher(const EpochPublisher&) = delete;
    EpochPublisher& operator=(const EpochPublisher&) = delete;

    // Writer side (any thread; writers are serialised among themselves).
    void publish(std::shared_ptr<const T> value) {
        std::lock_guard lock(writer_mutex_);
        auto node = std::make_unique<const Node>(Node{next_version_++, std::move(value)});
        const Node* raw = node.get();
        retained_.push_back(std::move(node));
        current_.store(raw, std::memory_order_release);
        reclaim_locked();
    }

    // Reader side (worker `reader` only): wait-free. Null before the first publish.
    const std::shared_ptr<const T>& load(unsigned reader) noexcept {
        const Node* node = current_.load(std::memory_order_acquire);
        if (!node) return empty_;
        seen_[reader].version.store(node->version, std::memory_order_release);
        return node->value;
    }

private:
    struct Node {
        std::uint64_t version;
        std::shared_ptr<const T> value;
    };
    struct alignas(64) Seen {
        std::atomic<std::uint64_t> version{0};
    };

    void reclaim_locked() {
        std::uint64_t oldest_in_use = std::numeric_limits<std::uint64_t>::max();
        for (unsigned i = 0; i < reader_count_; ++i)
            oldest_in_use = std::min(oldest_in_use, seen_[i].version.load(std::memory_order_acquire));
        while (retained_.size() > 1 && retained_.front()->version < oldest_in_use) retained_.pop_front();
    }

    std::atomic<const Node*> current_{nullptr};
    std::unique_ptr<Seen[]> seen_;
    unsigned reader_count_;
    std::mutex writer_mutex_; // writers only; readers never touch it
    std::deque<std::unique_ptr<const Node>> retained_;
    std::uint64_t next_version_ = 1;
    const std::shared_ptr<const T> empty_;
};

} // namespace releasectl::proxy
