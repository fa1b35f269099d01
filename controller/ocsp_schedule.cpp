#include "controller/ocsp_schedule.hpp"

#include <algorithm>
#include <set>

namespace releasectl::ocsp {

milliseconds refresh_delay(SystemTime now, std::optional<SystemTime> next_update, const Timing& timing) {
    if (!next_update) return timing.without_next_update;
    auto half = std::chrono::duration_cast<milliseconds>(*next_update - now) / 2;
    return std::clamp(half, timing.min_refresh, timing.max_refresh);
}

milliseconds retry_delay(unsigned failures, const Timing& timing) {
    milliseconds delay = timing.first_retry;
    for (unsigned i = 1; i < failures && delay < timing.max_retry; ++i) delay *= 2;
    return std::min(delay, timing.max_retry);
}

void StapleBook::rebase(const std::vector<std::string>& identities, SystemTime now) {
    std::map<std::string, Entry> kept;
    for (const auto& identity : identities) {
        if (identity.empty() || kept.contains(identity)) continue;
        auto it = entries_.find(identity);
        Entry entry = it != entries_.end() ? std::move(it->second) : Entry{};
        if (it == entries_.end() || entry.state != State::good) entry.due = now; // a reload is a good moment to retry
        kept.emplace(identity, std::move(entry));
    }
    entries_ = std::move(kept);
    order_ = identities;
}

StapleBook::Entry* StapleBook::entry(const std::string& identity) {
    auto it = entries_.find(identity);
    return it == entries_.end() ? nullptr : &it->second;
}

const StapleBook::Entry* StapleBook::find(const std::string& identity) const {
    auto it = entries_.find(identity);
    return it == entries_.end() ? nullptr : &it->second;
}

StapleBook::Outcome StapleBook::good(const std::string& identity, std::string der,
                                     std::optional<SystemTime> next_update, SystemTime now) {
    Outcome outcome;
    Entry* e = entry(identity);
    if (e == nullptr) return outcome;
    outcome = {true, e->state, refresh_delay(now, next_update, timing_)};
    e->state = State::good;
    e->staple = std::move(der);
    e->staple_expires = next_update;
    e->failures = 0;
    e->due = now + outcome.next_fetch;
    return outcome;
}

StapleBook::Outcome StapleBook::revoked(const std::string& identity, std::optional<SystemTime> next_update,
                                        SystemTime now) {
    Outcome outcome;
    Entry* e = entry(identity);
    if (e == nullptr) return outcome;
    outcome = {true, e->state, refresh_delay(now, next_update, timing_)};
    e->state = State::revoked;
    e->staple.clear();
    e->staple_expires.reset();
    e->failures = 0;
    e->due = now + outcome.next_fetch;
    return outcome;
}

StapleBook::Outcome StapleBook::failed(const std::string& identity, SystemTime now) {
    Outcome outcome;
    Entry* e = entry(identity);
    if (e == nullptr) return outcome;
    ++e->failures;
    outcome = {true, e->state, retry_delay(e->failures, timing_)};
    // Revoked stays revoked until a responder says otherwise.
    if (e->state != State::revoked) e->state = State::failing;
    e->due = now + outcome.next_fetch;
    return outcome;
}

std::vector<std::string> StapleBook::expire(SystemTime now) {
    std::vector<std::string> expired;
    for (auto& [identity, e] : entries_) {
        if (e.staple.empty() || !e.staple_expires || *e.staple_expires >= now) continue;
        e.staple.clear();
        e.staple_expires.reset();
        if (e.state == State::good) e.state = State::failing; // the next fetch is due anyway
        expired.push_back(identity);
    }
    return expired;
}

std::vector<std::string> StapleBook::due(SystemTime now) const {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const auto& identity : order_) {
        if (identity.empty() || !seen.insert(identity).second) continue;
        if (const Entry* e = find(identity); e && e->due <= now) out.push_back(identity);
    }
    return out;
}

std::optional<SystemTime> StapleBook::next_event() const {
    std::optional<SystemTime> next;
    auto consider = [&](SystemTime t) { if (!next || t < *next) next = t; };
    for (const auto& [identity, e] : entries_) {
        consider(e.due);
        if (!e.staple.empty() && e.staple_expires) consider(*e.staple_expires + milliseconds(1));
    }
    return next;
}

std::vector<std::string> StapleBook::staples() const {
    std::vector<std::string> out;
    out.reserve(order_.size());
    for (const auto& identity : order_) {
        const Entry* e = identity.empty() ? nullptr : find(identity);
        out.push_back(e ? e->staple : std::string());
    }
    return out;
}

} // namespace releasectl::ocsp
