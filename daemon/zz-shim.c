/* TEMPORARY until devaudit merges; never on main */
#include "daemon-internal.h"
int pc_devices_verify_approval(pc_daemon *d, const char *device_id, const char *signature_b64, const char *id,
                               const char *command, const char *cwd, const char *scope, unsigned minutes,
                               int64_t expires, pc_error **reterr)
{
        return pc_error_setf(reterr, EPERM, "bad_signature", "shim");
}
