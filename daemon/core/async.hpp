// The agent's one event loop is a boost::asio::io_context; transactions are
// C++20 coroutines on it. Blocking work (file copies, hashing, running a
// binary) goes to a small thread pool through runOffLoop and resumes on the
// loop when done.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <type_traits>
#include <utility>

namespace armdock {

template <typename T>
using Task = boost::asio::awaitable<T>;

// Runs f() on the pool and returns its result (or rethrows its exception) on
// the awaiting coroutine's executor.
template <typename F>
auto runOffLoop(boost::asio::thread_pool& pool, F f) -> Task<std::invoke_result_t<F>>
{
    using R = std::invoke_result_t<F>;
    co_return co_await boost::asio::co_spawn(
        pool.get_executor(), [f = std::move(f)]() mutable -> Task<R> { co_return f(); }, boost::asio::use_awaitable);
}

}  // namespace armdock
