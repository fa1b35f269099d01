#pragma once
// The stapler's bookkeeping, without I/O: per served certificate its staple,
// its state (for logging once per change) and when to ask the responder
// again. The clock is passed in, so tests need no waiting.
#include "controller/ocsp.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace releasectl::ocsp {

using std::chrono::milliseconds;

struct Timing {
    milliseconds first_retry{60'000};                 // after a failed fetch; doubles each time
    milliseconds max_retry{3'600'000};
    milliseconds min_refresh{300'000};                // a good response is refetched no sooner
    milliseconds max_refresh{12LL * 3'600'000};       // and no later than this
    milliseconds without_next_update{3'600'000};      // a response without nextUpdate
};

// A good response fetched at `now`: ask again halfway to its nextUpdate
// (within [min_refresh, max_refresh]), so a failed refresh leaves time for
// retries while the staple is still valid.
milliseconds refresh_delay(SystemTime now, std::optional<SystemTime> next_update, const Timing& timing);
// The wait after the `failures`-th failure in a row (1, 2, ...): first_retry,
// doubling, at most max_retry.
milliseconds retry_delay(unsigned failures, const Timing& timing);

class StapleBook {
public:
    enum class State { pending, good, failing, revoked };
    struct Entry {
        State state = State::pending;
        std::string staple;                      // DER OCSPResponse; "" = none
        std::optional<SystemTime> staple_expires; // its nextUpdate
        SystemTime due{};                        // next fetch
        unsigned failures = 0;                   // in a row
    };
    // What an outcome changed; `known` is false for a certificate the newest
    // set no longer serves (the outcome was ignored).
    struct Outcome {
        bool known = false;
        State before = State::pending;
        milliseconds next_fetch{0};
    };

    explicit StapleBook(Timing timing = {}) : timing_(timing) {}

    // The certificates of the newest set, in its order ("" = not stapled).
    // A certificate still served keeps its entry and staple, so a reload never
    // drops stapling (unless good, it is asked again at once); new ones are due
    // at `now`; the others are forgotten, with their staples.
    void rebase(const std::vector<std::string>& identities, SystemTime now);
    Outcome good(const std::string& identity, std::string der, std::optional<SystemTime> next_update, SystemTime now);
    // A revoked certificate is never stapled; it is asked about again as a
    // good one would be (a later answer may differ, e.g. certificateHold).
    Outcome revoked(const std::string& identity, std::optional<SystemTime> next_update, SystemTime now);
    // A failed fetch keeps the staple until its nextUpdate (see expire()).
    Outcome failed(const std::string& identity, SystemTime now);
    // Drops staples whose nextUpdate has passed; returns whose.
    std::vector<std::string> expire(SystemTime now);
    // Identities to fetch at `now`, each once, in set order.
    std::vector<std::string> due(SystemTime now) const;
    // The earliest fetch or staple expiry; nullopt when nothing is watched.
    std::optional<SystemTime> next_event() const;
    // For the newest set: the staple of each position ("" = none).
    std::vector<std::string> staples() const;
    const Entry* find(const std::string& identity) const;

private:
    Entry* entry(const std::string& identity);

    Timing timing_;
    std::vector<std::string> order_;
    std::map<std::string, Entry> entries_;
};

} // namespace releasectl::ocsp
