/*
 * OpenBLAS reference for lora4j's GemmBenchmark: times cblas_sgemm on row-major operands laid
 * out as the Java benchmark lays them out (C = A * op(B), lda/ldb/ldc the tight row lengths) and
 * prints one line per shape with the median, minimum and maximum GFLOP/s over the timed calls.
 *
 * usage: sgemm_bench THREADS SECONDS FORM:MxNxK [FORM:MxNxK ...]
 *   FORM is NN, NT, TN or TT (transposes of A and B); SECONDS is the wall-clock budget per shape,
 *   after a warm-up of a quarter of it. SGEMM_CLOCK=cpu times each call in CPU seconds instead.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

/* CLOCK_MONOTONIC, or with SGEMM_CLOCK=cpu the process's CPU time (GFLOP per CPU-second: with one
   thread, the rate undisturbed by other processes taking turns on the cores). */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The time budget is always wall-clock, so that a busy machine does not stretch a run. */
static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int compare(const void *x, const void *y) {
    double a = *(const double *) x, b = *(const double *) y;
    return a < b ? -1 : a > b;
}

static float *random_floats(size_t count, unsigned *seed) {
    float *x = malloc(count * sizeof(float));
    if (x == NULL) {
        fprintf(stderr, "sgemm_bench: cannot allocate %zu floats\n", count);
        exit(2);
    }
    for (size_t i = 0; i < count; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = (float) ((*seed >> 8) * (1.0 / 16777216.0) - 0.5);
    }
    return x;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS SECONDS FORM:MxNxK [FORM:MxNxK ...]  (FORM: NN, NT, TN, TT)\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]);
    double budget = atof(argv[2]);
    if (threads < 1 || budget <= 0) {
        fprintf(stderr, "sgemm_bench: THREADS (%s) must be >= 1 and SECONDS (%s) > 0\n", argv[1], argv[2]);
        return 2;
    }
    const char *clock_name = getenv("SGEMM_CLOCK");
    if (clock_name != NULL && strcmp(clock_name, "cpu") == 0) {
        clock_id = CLOCK_PROCESS_CPUTIME_ID;
    }
    openblas_set_num_threads(threads);
    printf("# OpenBLAS core %s, %d thread(s), %s time\n", openblas_get_corename(), threads,
           clock_id == CLOCK_MONOTONIC ? "wall-clock" : "CPU");
    printf("%-6s %-16s %10s %10s %10s %6s\n", "form", "shape", "median", "min", "max", "calls");
    unsigned seed = 42;
    for (int s = 3; s < argc; s++) {
        char form[3] = {0};
        int m, n, k;
        if (sscanf(argv[s], "%2[NT]:%dx%dx%d", form, &m, &n, &k) != 4 || strlen(form) != 2 || m < 1 || n < 1 || k < 1) {
            fprintf(stderr, "sgemm_bench: '%s' is not FORM:MxNxK (for example NT:256x1536x576)\n", argv[s]);
            return 2;
        }
        int ta = form[0] == 'T', tb = form[1] == 'T';
        float *a = random_floats((size_t) m * k, &seed);
        float *b = random_floats((size_t) k * n, &seed);
        float *c = calloc((size_t) m * n, sizeof(float));
        int lda = ta ? m : k, ldb = tb ? k : n;
        double flops = 2.0 * m * n * k;
        double start = wall();
        while (wall() - start < budget / 4) {
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                        a, lda, b, ldb, 0.0f, c, n);
        }
        int capacity = 1 << 16, calls = 0;
        double *rates = malloc(capacity * sizeof(double));
        start = wall();
        while ((wall() - start < budget || calls < 3) && calls < capacity) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                        a, lda, b, ldb, 0.0f, c, n);
            rates[calls++] = flops / (now() - t0) * 1e-9;
        }
        qsort(rates, calls, sizeof(double), compare);
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%dx%d", m, n, k);
        printf("%-6s %-16s %10.1f %10.1f %10.1f %6d\n", form, shape, rates[calls / 2], rates[0], rates[calls - 1], calls);
        fflush(stdout);
        free(rates);
        free(a);
        free(b);
        free(c);
    }
    return 0;
}
