#include "dbus/asio_bus.hpp"

#include <poll.h>
#include <time.h>

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <optional>

#include "dbus/sdbus_compat.hpp"

namespace armdock {

namespace asio = boost::asio;

std::unique_ptr<sdbus::IConnection> openBusConnection(const std::string& busSetting)
{
    if (busSetting == "system")
        return compat::systemBus();
    if (busSetting == "user")
        return compat::userBus();
    return compat::busAt(busSetting);
}

namespace {

std::chrono::microseconds monotonicNow()
{
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return std::chrono::seconds(now.tv_sec) + std::chrono::microseconds(now.tv_nsec / 1000);
}

}  // namespace

struct AsioBusDriver::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, sdbus::IConnection& connection)
        : io(io), connection(connection), descriptor(io), timer(io)
    {
    }

    void start();
    void stop();
    void process();
    void rearm();
    void waitOn(asio::posix::stream_descriptor& fd, asio::posix::descriptor_base::wait_type type, bool& pending);
    void armTimer(const std::optional<std::chrono::microseconds>& absolute);
    void watchEventFd(int fd);
    template <typename F>
    auto guarded(F f);

    asio::io_context& io;
    sdbus::IConnection& connection;
    asio::posix::stream_descriptor descriptor;
    std::optional<asio::posix::stream_descriptor> eventDescriptor;  // sdbus-c++ 2.x only
    asio::steady_timer timer;
    bool readPending = false;
    bool writePending = false;
    bool eventPending = false;
    bool processing = false;
    bool kickPosted = false;
    bool failed = false;
};

// Wraps a completion handler so that it does nothing once the driver is gone
// or the wait was cancelled.
template <typename F>
auto AsioBusDriver::Impl::guarded(F f)
{
    return [weak = weak_from_this(), f = std::move(f)](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || self->failed)
            return;
        f(*self, ec);
    };
}

void AsioBusDriver::Impl::start()
{
    const auto spec = compat::pollSpec(connection);
    descriptor.assign(spec.fd);
    watchEventFd(spec.eventFd);
    process();
}

void AsioBusDriver::Impl::watchEventFd(int fd)
{
    if (fd < 0)
        return;
    eventDescriptor.emplace(io);
    eventDescriptor->assign(fd);
}

void AsioBusDriver::Impl::stop()
{
    boost::system::error_code ignored;
    timer.cancel();
    descriptor.cancel(ignored);
    descriptor.release();  // sd-bus owns the fd
    if (eventDescriptor) {
        eventDescriptor->cancel(ignored);
        eventDescriptor->release();
    }
}

void AsioBusDriver::Impl::process()
{
    if (processing || failed)
        return;
    processing = true;
    try {
        while (compat::processOne(connection)) {
        }
    } catch (const std::exception& e) {
        processing = false;
        failed = true;
        spdlog::critical("D-Bus connection failed: {}", e.what());
        stop();
        throw;
    }
    processing = false;
    rearm();
}

void AsioBusDriver::Impl::rearm()
{
    const auto spec = compat::pollSpec(connection);
    if (spec.events & POLLIN)
        waitOn(descriptor, asio::posix::descriptor_base::wait_read, readPending);
    if (spec.events & POLLOUT)
        waitOn(descriptor, asio::posix::descriptor_base::wait_write, writePending);
    if (eventDescriptor)
        waitOn(*eventDescriptor, asio::posix::descriptor_base::wait_read, eventPending);
    armTimer(spec.timeout);
}

void AsioBusDriver::Impl::waitOn(asio::posix::stream_descriptor& fd, asio::posix::descriptor_base::wait_type type,
                                 bool& pending)
{
    if (pending)
        return;
    pending = true;
    fd.async_wait(type, guarded([&pending](Impl& self, const boost::system::error_code& ec) {
        pending = false;
        if (ec == asio::error::operation_aborted)
            return;
        self.process();
    }));
}

void AsioBusDriver::Impl::armTimer(const std::optional<std::chrono::microseconds>& absolute)
{
    if (!absolute) {
        timer.cancel();
        return;
    }
    const auto relative = std::max(std::chrono::microseconds(0), *absolute - monotonicNow());
    timer.expires_after(relative);  // cancels the previous wait
    timer.async_wait(guarded([](Impl& self, const boost::system::error_code& ec) {
        if (ec == asio::error::operation_aborted)
            return;
        self.process();
    }));
}

AsioBusDriver::AsioBusDriver(asio::io_context& io, sdbus::IConnection& connection)
    : impl_(std::make_shared<Impl>(io, connection))
{
    impl_->start();
}

AsioBusDriver::~AsioBusDriver()
{
    if (!impl_->failed)
        impl_->stop();
}

void AsioBusDriver::kick()
{
    if (impl_->kickPosted)
        return;
    impl_->kickPosted = true;
    asio::post(impl_->io, [weak = std::weak_ptr<Impl>(impl_)] {
        auto self = weak.lock();
        if (!self)
            return;
        self->kickPosted = false;
        self->process();
    });
}

}  // namespace armdock
