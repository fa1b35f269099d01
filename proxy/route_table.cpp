#include "route_table.hpp"

#include <algorithm>
#include <limits>

namespace releasectl::proxy {

std::uint32_t RouteTable::total_weight() const {
    std::uint32_t total = 0;
    for (const auto& slot : slots) total += slot.weight;
    return total;
}

int RouteTable::slot_index(std::string_view name) const {
    for (std::size_t i = 0; i < slots.size(); ++i)
        if (slots[i].name == name) return static_cast<int>(i);
    return -1;
}

RouteTablePublisher::RouteTablePublisher(unsigned reader_count)
    : seen_(std::make_unique<Seen[]>(reader_count == 0 ? 1 : reader_count)),
      reader_count_(reader_count == 0 ? 1 : reader_count) {}

std::uint64_t RouteTablePublisher::publish(RouteTable table) {
    std::lock_guard lock(writer_mutex_);
    table.version = next_version_++;
    auto owned = std::make_unique<const RouteTable>(std::move(table));
    const RouteTable* raw = owned.get();
    retained_.push_back(std::move(owned));
    current_.store(raw, std::memory_order_release);
    reclaim_locked();
    return raw->version;
}

RouteTable RouteTablePublisher::current() const {
    std::lock_guard lock(writer_mutex_);
    const RouteTable* t = current_.load(std::memory_order_acquire);
    return t ? *t : RouteTable{};
}

void RouteTablePublisher::reclaim_locked() {
    // A table may be freed once every reader has loaded a newer one: readers
    // use a table only between two load() calls, and loads are monotonic.
    std::uint64_t oldest_in_use = std::numeric_limits<std::uint64_t>::max();
    for (unsigned i = 0; i < reader_count_; ++i)
        oldest_in_use = std::min(oldest_in_use, seen_[i].version.load(std::memory_order_acquire));
    while (retained_.size() > 1 && retained_.front()->version < oldest_in_use) retained_.pop_front();
}

} // namespace releasectl::proxy
