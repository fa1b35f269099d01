#include "systemd_notify.hpp"

#ifdef RELEASECTL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace releasectl::systemd {

#ifdef RELEASECTL_HAVE_SYSTEMD
void notify_ready() { sd_notify(0, "READY=1\nSTATUS=serving"); }
void notify_stopping() { sd_notify(0, "STOPPING=1\nSTATUS=draining"); }
void notify_watchdog() { sd_notify(0, "WATCHDOG=1"); }
std::optional<std::chrono::microseconds> watchdog_interval() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(usec);
}
#else
void notify_ready() {}
void notify_stopping() {}
void notify_watchdog() {}
std::optional<std::chrono::microseconds> watchdog_interval() { return std::nullopt; }
#endif

} // namespace releasectl::systemd
