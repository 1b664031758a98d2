/* svg.h - a small writer of line charts as standalone SVG 1.1, for `rlhf
 * plot`: axes with "nice" ticks (1, 2, 5 x 10^k) and tick labels, axis
 * titles, an optional second y axis on the right, a legend, and one
 * polyline (with point markers) per series.
 *
 * What it guarantees (a figure goes into a paper as it is): well-formed XML
 * with every text escaped, no scripts, no external references (fonts are
 * the generic "sans-serif"), fixed pixel size with a viewBox so it scales.
 * Points whose x or y is not finite are left out; a series with none left
 * is still in the legend (marked "no data").
 *
 * Owns nothing: the caller's arrays are read during the call. */
#ifndef RLHF_SVG_H
#define RLHF_SVG_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *name;       /* legend text */
    const double *x, *y;    /* n points */
    int n;
    int right_axis;         /* 1: against the right y axis (the chart needs y2_label) */
    int dashed;
    const char *color;      /* "#rrggbb"; NULL: from a fixed palette */
} svg_series_t;

typedef struct {
    const char *title;                  /* may be NULL */
    const char *x_label, *y_label;      /* axis titles, with units */
    const char *y2_label;               /* NULL: no right axis */
    int width, height;                  /* pixels; 0: 720 x 440 */
    int y_fixed;                        /* 1: the left axis spans exactly [y_min, y_max] */
    int legend_bottom;                  /* 1: legend at the bottom right (rising curves near the top) */
    double y_min, y_max;
} svg_chart_t;

/* Writes the chart to out. Returns 0, or -1 with err (a series on the
 * right axis without y2_label). */
int svg_line_chart(FILE *out, const svg_chart_t *c, const svg_series_t *s, int n_series, char *err, size_t errlen);

/* The same into the file at path, written atomically. */
int svg_line_chart_file(const char *path, const svg_chart_t *c, const svg_series_t *s, int n_series, char *err,
                        size_t errlen);

/* Ticks for [lo, hi]: a step of 1, 2 or 5 x 10^k giving at most max_ticks
 * (>= 2) ticks; *t0 is the first multiple of the step <= lo, *t1 the first
 * >= hi (the axis then spans [t0, t1]). Returns the step. A degenerate range
 * (lo == hi, or not finite) is widened around lo first. */
double svg_nice_ticks(double lo, double hi, int max_ticks, double *t0, double *t1);

/* A tick label: at most 4 significant digits, k / M for thousands and
 * millions ("12.5k", "1.5M"), "0" for zero. */
void svg_format_tick(char *dst, size_t dstlen, double v, double step);

#endif
