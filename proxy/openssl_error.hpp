#pragma once
// OpenSSL's most recent error as a sentence fragment ("certificate verify
// failed"), for messages that name a file or a peer. Clears the error queue.
#include <string>

namespace releasectl::proxy {

std::string openssl_error();

} // namespace releasectl::proxy
