#pragma once
// Webhook notifications ([[notify]] url): a JSON POST per rollout event, sent in
// the background with a timeout. A failing receiver is logged and never blocks
// or delays a rollout step or a rollback.
#include "controller/config.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace releasectl {

class Notifier {
public:
    Notifier(boost::asio::io_context& io, std::vector<NotifyConfig> targets);
    void send(const std::string& event, const boost::json::object& payload);
    void reconfigure(std::vector<NotifyConfig> targets) { targets_ = std::move(targets); }

private:
    boost::asio::io_context& io_;
    std::vector<NotifyConfig> targets_;
};

} // namespace releasectl
