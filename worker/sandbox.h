/*
 * sandbox: a worker's descriptors, capabilities and seccomp allow-list
 * (see sandbox.c).
 */
#ifndef INGESTD_SANDBOX_H
#define INGESTD_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

void	 sandbox_begin(int *keep, int n);
void	 sandbox_enter(const struct config *);
void	 sandbox_call_name(uint64_t noted, char *buf, size_t size);

#endif
