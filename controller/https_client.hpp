#pragma once
// A minimal async HTTPS/1.1 client for the control thread (the ACME client):
// https:// URLs, certificate and host name verified, one request per
// connection, whole-call timeout. Errors are values.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <string>

namespace releasectl {

struct HttpsRequest {
    std::string method = "GET";
    std::string url;          // https://host[:port]/path
    std::string body;
    std::string content_type; // sent with a body
    std::string ca_bundle;    // PEM file to trust; empty: the system's store
    std::chrono::milliseconds timeout{30'000};
};

struct HttpsResponse {
    bool ok = false; // a complete response arrived (any status)
    unsigned status = 0;
    std::string location;     // Location
    std::string replay_nonce; // Replay-Nonce (ACME)
    std::string body;
    std::string error;        // why not ok
};

boost::asio::awaitable<HttpsResponse> https_request(boost::asio::io_context& io, HttpsRequest request);

} // namespace releasectl
