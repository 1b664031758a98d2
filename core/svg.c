/* svg.c - see svg.h. */
#include "svg.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Colour-blind-safe (Okabe-Ito), dark enough on white and in grey print. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"};

double svg_nice_ticks(double lo, double hi, int max_ticks, double *t0, double *t1) {
    if (max_ticks < 2) max_ticks = 2;
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (hi < lo) {
        double t = lo;
        lo = hi, hi = t;
    }
    if (hi - lo <= fabs(lo) * 1e-12) {     // one value: a range around it
        double d = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= d, hi += d;
    }
    double raw = (hi - lo) / (max_ticks - 1), mag = pow(10, floor(log10(raw))), step = mag;
    static const double mult[] = {1, 2, 5, 10, 20};
    for (size_t i = 0; i < sizeof mult / sizeof mult[0]; i++) {
        step = mult[i] * mag;
        if (ceil(hi / step - 1e-9) - floor(lo / step + 1e-9) + 1 <= max_ticks) break;
    }
    *t0 = floor(lo / step + 1e-9) * step;
    *t1 = ceil(hi / step - 1e-9) * step;
    return step;
}

void svg_format_tick(char *dst, size_t dstlen, double v, double step) {
    if (fabs(v) < step * 1e-6) {
        snprintf(dst, dstlen, "0");
        return;
    }
    double scale = 1, big = fmax(fabs(v), step);
    const char *suffix = "";
    if (big >= 1e6 && step >= 1e5) scale = 1e6, suffix = "M";
    else if (big >= 1e4 && step >= 100) scale = 1e3, suffix = "k";
    /* As many decimals as the step needs (2.5k steps: one). */
    double s = step / scale;
    int decimals = 0;
    while (decimals < 6 && fabs(s * pow(10, decimals) - round(s * pow(10, decimals))) > 1e-6 * s * pow(10, decimals))
        decimals++;
    snprintf(dst, dstlen, "%.*f%s", decimals, v / scale, suffix);
}

/* Text content or attribute value, escaped. */
static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* XML 1.0 forbids most control characters, even escaped. */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') fputc(' ', f);
            else fputc(*s, f);
        }
    }
}

typedef struct {
    double lo, hi;      /* data range */
    int any;
} range_t;

static void widen(range_t *r, double v) {
    if (!isfinite(v)) return;
    if (!r->any) r->lo = r->hi = v, r->any = 1;
    r->lo = fmin(r->lo, v);
    r->hi = fmax(r->hi, v);
}

typedef struct {
    double t0, t1, step;
    double p0, p1;      /* pixels of t0 and t1 */
} axis_t;

static double to_px(const axis_t *a, double v) { return a->p0 + (v - a->t0) / (a->t1 - a->t0) * (a->p1 - a->p0); }

static void make_axis(axis_t *a, const range_t *r, int max_ticks, double p0, double p1) {
    a->step = svg_nice_ticks(r->any ? r->lo : 0, r->any ? r->hi : 1, max_ticks, &a->t0, &a->t1);
    a->p0 = p0;
    a->p1 = p1;
}

/* Tick values of a, in order; returns how many (at most max). */
static int ticks(const axis_t *a, double *v, int max) {
    int n = 0;
    for (int i = 0; n < max; i++) {
        double t = a->t0 + i * a->step;
        if (t > a->t1 + a->step * 1e-6) break;
        v[n++] = fabs(t) < a->step * 1e-9 ? 0 : t;
    }
    return n;
}

int svg_line_chart(FILE *f, const svg_chart_t *c, const svg_series_t *s, int n_series, char *err, size_t errlen) {
    int W = c->width > 0 ? c->width : 720, H = c->height > 0 ? c->height : 440;
    range_t rx = {0}, ry = {0}, ry2 = {0};
    for (int k = 0; k < n_series; k++) {
        if (s[k].right_axis && !c->y2_label) {
            snprintf(err, errlen, "series '%s' is on the right axis, but the chart has none", s[k].name);
            return -1;
        }
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
            widen(&rx, s[k].x[i]);
            widen(s[k].right_axis ? &ry2 : &ry, s[k].y[i]);
        }
    }
    double left = 84, right = W - (c->y2_label ? 84 : 28), top = c->title ? 44 : 20, bottom = H - 58;
    axis_t ax, ay, ay2;
    make_axis(&ax, &rx, 8, left, right);
    if (c->y_fixed) {
        range_t fixed = {c->y_min, c->y_max, 1};
        make_axis(&ay, &fixed, 6, bottom, top);
        ay.t0 = c->y_min, ay.t1 = c->y_max;
    } else {
        make_axis(&ay, &ry, 6, bottom, top);
    }
    make_axis(&ay2, &ry2, 6, bottom, top);

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fputs("<title>", f);
    put_text(f, c->title ? c->title : c->y_label);
    fputs("</title>\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    if (c->title) {
        fprintf(f, "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">",
                (left + right) / 2);
        put_text(f, c->title);
        fputs("</text>\n", f);
    }

    /* Grid, ticks and tick labels. */
    double tv[64];
    char label[48];
    int n = ticks(&ax, tv, 64);
    fputs("<g stroke=\"#dddddd\" stroke-width=\"1\">\n", f);
    for (int i = 0; i < n; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", to_px(&ax, tv[i]), top,
                to_px(&ax, tv[i]), bottom);
    double yv[64];
    int ny = ticks(&ay, yv, 64);
    for (int i = 0; i < ny; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", left, to_px(&ay, yv[i]), right,
                to_px(&ay, yv[i]));
    fputs("</g>\n<g stroke=\"#000000\" stroke-width=\"1\">\n", f);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", left, bottom, right, bottom);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", left, top, left, bottom);
    if (c->y2_label) fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", right, top, right, bottom);
    for (int i = 0; i < n; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", to_px(&ax, tv[i]), bottom,
                to_px(&ax, tv[i]), bottom + 5);
    for (int i = 0; i < ny; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", left - 5, to_px(&ay, yv[i]), left,
                to_px(&ay, yv[i]));
    double y2v[64];
    int ny2 = c->y2_label ? ticks(&ay2, y2v, 64) : 0;
    for (int i = 0; i < ny2; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", right, to_px(&ay2, y2v[i]), right + 5,
                to_px(&ay2, y2v[i]));
    fputs("</g>\n<g fill=\"#000000\">\n", f);
    for (int i = 0; i < n; i++) {
        svg_format_tick(label, sizeof label, tv[i], ax.step);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", to_px(&ax, tv[i]), bottom + 19,
                label);
    }
    for (int i = 0; i < ny; i++) {
        svg_format_tick(label, sizeof label, yv[i], ay.step);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left - 8, to_px(&ay, yv[i]) + 4,
                label);
    }
    for (int i = 0; i < ny2; i++) {
        svg_format_tick(label, sizeof label, y2v[i], ay2.step);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"start\">%s</text>\n", right + 8,
                to_px(&ay2, y2v[i]) + 4, label);
    }
    /* Axis titles. */
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">", (left + right) / 2, H - 16.0);
    put_text(f, c->x_label);
    fprintf(f, "</text>\n<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" "
               "font-size=\"13\">",
            20.0, (top + bottom) / 2);
    put_text(f, c->y_label);
    fputs("</text>\n", f);
    if (c->y2_label) {
        fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(90)\" text-anchor=\"middle\" font-size=\"13\">",
                W - 20.0, (top + bottom) / 2);
        put_text(f, c->y2_label);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);

    /* The series, clipped to the plot area (a fixed axis may cut values). */
    fprintf(f, "<defs><clipPath id=\"plot\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>"
               "</defs>\n<g clip-path=\"url(#plot)\" fill=\"none\" stroke-width=\"1.6\" stroke-linejoin=\"round\">\n",
            left - 3, top - 3, right - left + 6, bottom - top + 6);
    for (int k = 0; k < n_series; k++) {
        const char *col = s[k].color ? s[k].color : palette[k % (sizeof palette / sizeof palette[0])];
        const axis_t *a = s[k].right_axis ? &ay2 : &ay;
        int pts = 0;
        for (int i = 0; i < s[k].n; i++) pts += isfinite(s[k].x[i]) && isfinite(s[k].y[i]);
        if (!pts) continue;
        fputs("<polyline stroke=\"", f);
        put_text(f, col);
        fprintf(f, "\"%s points=\"", s[k].dashed ? " stroke-dasharray=\"6 3\"" : "");
        int col_n = 0;
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
            fprintf(f, "%s%.1f,%.1f", col_n++ % 8 ? " " : (col_n > 1 ? "\n" : ""), to_px(&ax, s[k].x[i]),
                    to_px(a, s[k].y[i]));
        }
        fputs("\"/>\n", f);
        if (pts <= 300) {   // markers help a sparse series; a dense one is a line
            fputs("<g stroke=\"none\" fill=\"", f);
            put_text(f, col);
            fputs("\">\n", f);
            for (int i = 0; i < s[k].n; i++)
                if (isfinite(s[k].x[i]) && isfinite(s[k].y[i]))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\"/>\n", to_px(&ax, s[k].x[i]), to_px(a, s[k].y[i]));
            fputs("</g>\n", f);
        }
    }
    fputs("</g>\n", f);

    /* Legend, inside the plot area: top left, or bottom right. */
    double lx = left + 10, ly = top + 8, lw = 0;
    for (int k = 0; k < n_series; k++) {
        double w = 7.0 * (double)strlen(s[k].name) + (s[k].right_axis ? 70 : 0) + 40;
        lw = fmax(lw, w);
    }
    if (c->legend_bottom) {
        lx = right - 10 - (lw + 16);
        ly = bottom - 8 - (20.0 * n_series + 8);
    }
    if (n_series > 0) {
        fprintf(f, "<g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#ffffff\" "
                   "fill-opacity=\"0.9\" stroke=\"#999999\"/>\n",
                lx, ly, lw + 16, 20.0 * n_series + 8);
        for (int k = 0; k < n_series; k++) {
            const char *col = s[k].color ? s[k].color : palette[k % (sizeof palette / sizeof palette[0])];
            double y = ly + 18 + 20.0 * k;
            int pts = 0;
            for (int i = 0; i < s[k].n; i++) pts += isfinite(s[k].x[i]) && isfinite(s[k].y[i]);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2\"%s stroke=\"", lx + 8,
                    y - 4, lx + 36, y - 4, s[k].dashed ? " stroke-dasharray=\"6 3\"" : "");
            put_text(f, col);
            fprintf(f, "\"/>\n<text x=\"%.1f\" y=\"%.1f\">", lx + 44, y);
            put_text(f, s[k].name);
            if (s[k].right_axis) fputs(" (right axis)", f);
            if (!pts) fputs(" (no data)", f);
            fputs("</text>\n", f);
        }
        fputs("</g>\n", f);
    }
    fputs("</svg>\n", f);
    return 0;
}

int svg_line_chart_file(const char *path, const svg_chart_t *c, const svg_series_t *s, int n_series, char *err,
                        size_t errlen) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        snprintf(err, errlen, "open_memstream: %s", strerror(errno));
        return -1;
    }
    int rc = svg_line_chart(f, c, s, n_series, err, errlen);
    fclose(f);
    if (rc == 0 && write_file_atomic(path, text, len) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = -1;
    }
    free(text);
    return rc;
}
