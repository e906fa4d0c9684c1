// The BLAS behind LibTorch's CPU matrix products. Debian's LibTorch calls libblas.so.3, whose
// alternative is the slow reference BLAS unless OpenBLAS is installed (./fraud installs
// libopenblas0-openmp). Used by the training bench (GFLOP/s) and by a test that checks the
// products against a plain loop: a BLAS that picks the wrong kernel for the CPU (OpenBLAS's
// OPENBLAS_CORETYPE pitfall) computes fast and wrong.
#pragma once

#include <cstdint>
#include <string>

namespace fraud::model {

// out (m x n) = a (m x k) * b (k x n), row-major float32, through LibTorch's matmul on the
// calling thread's current LibTorch thread count. Thread-compatible.
void MatMul(const float* a, const float* b, int64_t m, int64_t k, int64_t n, float* out);

// GFLOP/s of an n x n by n x n float32 product through LibTorch (median of `repeats`), with
// `threads` LibTorch threads (restored afterwards).
double GemmGflops(int64_t n, int repeats, int threads);

// Which BLAS library the process loaded for libblas.so.3 (from /proc/self/maps), e.g.
// "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"; "" when none is mapped.
std::string LoadedBlasLibrary();

}  // namespace fraud::model
