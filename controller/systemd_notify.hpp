#pragma once
// sd_notify(3) for Type=notify units: READY once the persisted route table is
// served, WATCHDOG pings, STOPPING on drain. No-ops outside systemd.
#include <chrono>
#include <optional>

namespace releasectl::systemd {

void notify_ready();
void notify_stopping();
void notify_watchdog();
// Half of this is how often to ping; nullopt when no watchdog is configured.
std::optional<std::chrono::microseconds> watchdog_interval();

} // namespace releasectl::systemd
