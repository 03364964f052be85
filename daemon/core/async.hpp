// The agent's one event loop is a boost::asio::io_context; transactions are
// C++20 coroutines on it. Blocking work (file copies, hashing, running a
// binary) goes to a small thread pool through runOffLoop and resumes on the
// loop when done.
#pragma once

#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace armdock {

template <typename T>
using Task = boost::asio::awaitable<T>;

// Runs f() on the pool and returns its result, if any, (or rethrows its exception) on
// the awaiting coroutine's executor.
//
// GCC 12 trap: a lambda with by-value captures of non-trivial types, written
// as a temporary inside a co_await expression, has its captures destroyed
// twice (a crash). In coroutines, name such lambdas first or capture by
// reference; this helper itself only uses a named, by-reference lambda.
template <typename F>
auto runOffLoop(boost::asio::thread_pool& pool, F f) -> Task<std::invoke_result_t<F&>>
{
    using R = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<R>) {
        auto onPool = [&f]() -> Task<void> {
            f();
            co_return;
        };
        auto operation = boost::asio::co_spawn(pool.get_executor(), onPool, boost::asio::use_awaitable);
        co_await std::move(operation);
    } else {
        auto onPool = [&f]() -> Task<R> { co_return f(); };
        auto operation = boost::asio::co_spawn(pool.get_executor(), onPool, boost::asio::use_awaitable);
        co_return co_await std::move(operation);
    }
}

// A co_spawn completion handler: hands the message of what the coroutine
// threw to `failed`; nothing when it ended normally.
template <typename OnFailure>
auto onException(OnFailure failed)
{
    return [failed = std::move(failed)](std::exception_ptr e) mutable {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            failed(std::string(x.what()));
        } catch (...) {
            failed(std::string("an exception of unknown type"));
        }
    };
}

}  // namespace armdock
