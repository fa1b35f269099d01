#pragma once
// Errors at I/O boundaries are values: a Status (empty error = success) or a
// Result<T> (a value or an error sentence meant for an operator).
#include <optional>
#include <string>
#include <utility>

namespace releasectl::releases {

struct Status {
    std::string error; // empty = success

    bool ok() const { return error.empty(); }
    explicit operator bool() const { return ok(); }

    static Status success() { return {}; }
    static Status failure(std::string message) {
        return Status{message.empty() ? std::string("unknown error") : std::move(message)};
    }
};

template <class T>
struct Result {
    std::optional<T> value;
    std::string error;

    bool ok() const { return value.has_value(); }
    explicit operator bool() const { return ok(); }
    const T& operator*() const { return *value; }
    T& operator*() { return *value; }
    const T* operator->() const { return &*value; }

    static Result success(T v) { return Result{std::move(v), {}}; }
    static Result failure(std::string message) {
        return Result{std::nullopt, message.empty() ? std::string("unknown error") : std::move(message)};
    }
    static Result failure(const Status& status) { return failure(status.error); }
};

} // namespace releasectl::releases
