#pragma once
// A growable read buffer with a consumed prefix: bytes are read into the tail,
// parsed from the head, and compacted only when space runs out.
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace releasectl::proxy {

class ByteBuffer {
public:
    explicit ByteBuffer(std::size_t capacity = 16 * 1024)
        : data_(std::make_unique<char[]>(capacity)), capacity_(capacity) {}

    std::string_view view() const { return {data_.get() + begin_, end_ - begin_}; }
    std::size_t size() const { return end_ - begin_; }
    bool empty() const { return begin_ == end_; }
    std::size_t capacity() const { return capacity_; }

    void consume(std::size_t n) {
        begin_ += n;
        if (begin_ == end_) begin_ = end_ = 0;
    }
    void clear() { begin_ = end_ = 0; }

    // Space to read into; compacts (and grows up to `max_capacity`) when the tail is full.
    char* write_ptr() { return data_.get() + end_; }
    std::size_t writable() const { return capacity_ - end_; }
    void commit(std::size_t n) { end_ += n; }

    // Makes at least one byte writable, growing up to max_capacity. False if full.
    bool prepare(std::size_t max_capacity) {
        if (end_ < capacity_) return true;
        if (begin_ > 0) {
            std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
            return true;
        }
        if (capacity_ >= max_capacity) return false;
        std::size_t grown = capacity_ * 2 > max_capacity ? max_capacity : capacity_ * 2;
        auto bigger = std::make_unique<char[]>(grown);
        std::memcpy(bigger.get(), data_.get(), end_);
        data_ = std::move(bigger);
        capacity_ = grown;
        return true;
    }

    // Grows the buffer to `capacity` (never shrinks), keeping unread bytes: big
    // bodies are then relayed in fewer, larger reads and writes.
    void reserve(std::size_t capacity) {
        if (capacity_ >= capacity) return;
        auto bigger = std::make_unique<char[]>(capacity);
        std::memcpy(bigger.get(), data_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
        data_ = std::move(bigger);
        capacity_ = capacity;
    }

private:
    std::unique_ptr<char[]> data_;
    std::size_t capacity_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

} // namespace releasectl::proxy
