/*
 * proc: the process as its layers know it (see proc.h).
 */
#include "proc.h"

struct proc proc = { .slot = -1, .name = "ingestd" };
