//! The chapter's first program: C = A x B for n x n matrices of ones and twos, so every
//! element of C must be 2n (2048 for the chapter's 1024). Three forms, chosen by Cargo features:
//!   plain  the single-threaded triple loop (always built)
//!   rayon  the same loop with the rows of C split across threads (feature "rayon")
//!   cuda   the chapter's kernel, compiled by NVRTC and launched through cudarc (feature "cuda")
//! Usage: gpu-ml [N]. Human lines first, then one JSON line (what provision reads).
//! Written by provision's rust_project role: edit it freely, provision will leave it as you wrote it.

use std::time::Instant;

fn matmul_plain(a: &[f32], b: &[f32], c: &mut [f32], n: usize) {
    for i in 0..n {
        for j in 0..n {
            let mut sum = 0.0f32;
            for p in 0..n {
                sum += a[i * n + p] * b[p * n + j];
            }
            c[i * n + j] = sum;
        }
    }
}

#[cfg(feature = "rayon")]
fn matmul_rayon(a: &[f32], b: &[f32], c: &mut [f32], n: usize) {
    use rayon::prelude::*;
    c.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for j in 0..n {
            let mut sum = 0.0f32;
            for p in 0..n {
                sum += a[i * n + p] * b[p * n + j];
            }
            row[j] = sum;
        }
    });
}

#[cfg(feature = "cuda")]
const KERNEL: &str = r#"
extern "C" __global__ void matmul(const float* A, const float* B, float* C, int M, int N, int K) {
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (row < M && col < N) {
        float sum = 0.0f;
        for (int i = 0; i < K; i++) {
            sum += A[row * K + i] * B[i * N + col];
        }
        C[row * N + col] = sum;
    }
}
"#;

/// The chapter's kernel through cudarc: (C, milliseconds of one launch after a warm-up launch).
#[cfg(feature = "cuda")]
fn matmul_cuda(a: &[f32], b: &[f32], n: usize) -> Result<(Vec<f32>, f64), String> {
    use cudarc::driver::{CudaDevice, LaunchAsync, LaunchConfig};
    let err = |e: &dyn std::fmt::Debug| format!("{:?}", e);
    let dev = CudaDevice::new(0).map_err(|e| err(&e))?;
    let ptx = cudarc::nvrtc::compile_ptx(KERNEL).map_err(|e| err(&e))?;
    dev.load_ptx(ptx, "matmul_module", &["matmul"]).map_err(|e| err(&e))?;
    let a_gpu = dev.htod_copy(a.to_vec()).map_err(|e| err(&e))?;
    let b_gpu = dev.htod_copy(b.to_vec()).map_err(|e| err(&e))?;
    let mut c_gpu = dev.alloc_zeros::<f32>(n * n).map_err(|e| err(&e))?;
    let blocks = ((n + 15) / 16) as u32;
    let cfg = LaunchConfig { grid_dim: (blocks, blocks, 1), block_dim: (16, 16, 1), shared_mem_bytes: 0 };
    let mut ms = 0.0;
    for _ in 0..2 {
        let f = dev.get_func("matmul_module", "matmul").ok_or("kernel matmul not loaded")?;
        let t0 = Instant::now();
        unsafe { f.launch(cfg, (&a_gpu, &b_gpu, &mut c_gpu, n as i32, n as i32, n as i32)) }
            .map_err(|e| err(&e))?;
        dev.synchronize().map_err(|e| err(&e))?;
        ms = t0.elapsed().as_secs_f64() * 1000.0;
    }
    let c = dev.dtoh_sync_copy(&c_gpu).map_err(|e| err(&e))?;
    Ok((c, ms))
}

/// The value every element of C has, or None when they differ.
fn check_value(c: &[f32]) -> Option<f32> {
    let first = *c.first()?;
    if c.iter().all(|&x| x == first) { Some(first) } else { None }
}

fn json_form(name: &str, ms: f64, c: &[f32], expected: f32) -> String {
    let value = check_value(c);
    let shown = value.map_or("null".to_string(), |v| format!("{}", v));
    println!("{:<6} {:>10.3} ms  every element {}", name, ms,
             value.map_or("NOT equal".to_string(), |v| format!("{}", v)));
    format!("\"{}\": {{\"ms\": {:.3}, \"check\": {}, \"ok\": {}}}", name, ms, shown, value == Some(expected))
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let a = vec![1.0f32; n * n];
    let b = vec![2.0f32; n * n];
    let expected = 2.0 * n as f32;
    let mut forms: Vec<String> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();

    let mut c = vec![0.0f32; n * n];
    let t0 = Instant::now();
    matmul_plain(&a, &b, &mut c, n);
    forms.push(json_form("plain", t0.elapsed().as_secs_f64() * 1000.0, &c, expected));

    #[cfg(feature = "rayon")]
    {
        let mut c = vec![0.0f32; n * n];
        let t0 = Instant::now();
        matmul_rayon(&a, &b, &mut c, n);
        forms.push(json_form("rayon", t0.elapsed().as_secs_f64() * 1000.0, &c, expected));
    }
    #[cfg(not(feature = "rayon"))]
    left_out.push("\"rayon\": \"built without the rayon feature\"".to_string());

    #[cfg(feature = "cuda")]
    match matmul_cuda(&a, &b, n) {
        Ok((c, ms)) => forms.push(json_form("cuda", ms, &c, expected)),
        Err(e) => {
            println!("cuda   failed: {}", e);
            left_out.push(format!("\"cuda\": {:?}", format!("failed: {}", e)));
        }
    }
    #[cfg(not(feature = "cuda"))]
    left_out.push("\"cuda\": \"built without the cuda feature\"".to_string());

    let threads = {
        #[cfg(feature = "rayon")]
        { rayon::current_num_threads() }
        #[cfg(not(feature = "rayon"))]
        { 1 }
    };
    println!("{{\"gpu_ml\": 1, \"n\": {}, \"expected\": {}, \"threads\": {}, \"forms\": {{{}}}, \"left_out\": {{{}}}}}",
             n, expected, threads, forms.join(", "), left_out.join(", "));
}
