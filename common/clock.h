/*
 * clock: milliseconds on the monotonic clock, for deadlines and durations
 * that must not jump with the wall clock.
 */
#ifndef INGESTD_CLOCK_H
#define INGESTD_CLOCK_H

long	 clock_ms(void);

#endif
