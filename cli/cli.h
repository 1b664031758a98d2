/* cli.h - what the subcommands of `rlhf` share. */
#ifndef RLHF_CLI_H
#define RLHF_CLI_H

#include "job.h"

/* Parses the options every command that runs a job takes: JOB.ini, then
 * --seed N, --out DIR, --set section.key=value (repeatable), --feedback
 * MODE. Returns 0 (*out: run.out, or NULL when unset), or 2 after printing
 * what is wrong. */
int cli_load_job(int argc, char **argv, const char *cmd, job_t *job, const char **out);

/* The default run directory: runs/<env>-s<seed>-<local time>. */
void cli_default_run_dir(const job_t *job, char *dir, size_t len);

/* rlhf run (run.c). */
int cmd_run(int argc, char **argv);

/* rlhf status (status.c) and rlhf plot (plot.c). */
int cmd_status(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* rlhf labelers (labelers.c) and rlhf labels (labels.c). */
int cmd_labelers(int argc, char **argv);
int cmd_labels(int argc, char **argv);

#endif
