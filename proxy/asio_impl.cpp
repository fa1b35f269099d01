// The single translation unit that compiles Asio, Asio.SSL and Beast.
// Everything else is built with BOOST_*_SEPARATE_COMPILATION and links this.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
