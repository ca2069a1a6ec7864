/*
 * control: ingestd -s reload|stop|quit|reopen|upgrade, from the command
 * line to the running master.
 */
#ifndef INGESTD_CONTROL_H
#define INGESTD_CONTROL_H

int	 control_valid(const char *cmd);
int	 control_send(const char *cmd, const char *pid_path);

#endif
