// The reference for benchmark 5: a Type=notify service that does nothing but
// send READY=1 and wait; the manager's own floor for "exec to READY=1".
#include <systemd/sd-daemon.h>
#include <unistd.h>

int main()
{
    sd_notify(0, "READY=1");
    for (;;)
        pause();
}
