/* SPDX-License-Identifier: MIT */
/* Bash as the oracle of the gatekeeper: runs a command string in real bash inside a throwaway
 * environment where no program can run, and reports which programs bash tried to run. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "policies.h"

/* 1 when the oracle can run here (root, bash, namespaces), 0 when it cannot (ret_why says why). */
int bash_oracle_available(const char **ret_why);

/* Runs COMMAND (LEN bytes) with bash -c as user nobody in new mount, network and PID namespaces, with
 * empty tmpfs over the program directories, /tmp, /var/tmp, /dev/shm and the home directories, PATH
 * pointing nowhere, and a command_not_found_handle that records each program name bash looks up (its
 * first word after expansion). Killed after TIMEOUT_MS. Returns the names as a NUL-separated list in
 * *ret (its length in *ret_len), or a negative errno. */
int bash_oracle_run(const char *command, size_t len, unsigned timeout_ms, char **ret, size_t *ret_len);

/* Compares: when V (decided under a "default allow" policy) is complete and allowed, every name in NAMES
 * must be a command (or a wrapper it was found in) of V. Returns NULL when they agree, else a
 * description of the first program bash ran that the analyser did not see (to free). */
char *bash_oracle_compare(const pc_verdict *v, const char *names, size_t names_len);
