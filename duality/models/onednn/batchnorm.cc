// oneDNN's batch normalization (training) as XLA:CPU FFI custom calls: NHWC float32, oneDNN 3.
//
//   duality_onednn_bn_fwd  (x, scale, shift)              -> y, mean, var, relu mask, scratchpad
//   duality_onednn_bn_bwd  (x, dy, mean, var, scale, mask) -> dx, dscale, dshift, scratchpad
//
// y = scale * (x - mean) / sqrt(var + eps) + shift over the batch's statistics (mean and biased variance
// per channel, over N, H and W), followed by a ReLU when the `relu` attribute is 1. The backward pass is
// the full gradient through the statistics. With the ReLU fused, the forward pass records which outputs
// were positive in a mask (oneDNN's "workspace", a bit per element) that the backward pass reads instead
// of the activation. Why: forward + backward of BatchNorm + ReLU on ResNet-18's 256x28x28x64 activation take
// 11.5 ms here against 16.8 for the same function in XLA (benchmarks/batchnorm.py; docs/performance.md, eighth round).
//
// As in conv.cc, nothing is allocated inside a call: the mask and oneDNN's scratchpad are results that XLA
// places with the program's other buffers, and `duality_onednn_bn_bytes` gives their sizes while tracing.
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "xla/ffi/api/ffi.h"

#if DNNL_VERSION_MAJOR < 3
#error "duality's oneDNN batch normalization needs oneDNN >= 3 (pip install onednn-devel-cpu-gomp)"
#endif

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// n, h, w, c, relu, the bits of the float32 epsilon
using Key = std::array<int64_t, 6>;

struct Norm {
  memory::desc act, stat, mask, fwd_scratch, bwd_scratch;
  dnnl::batch_normalization_forward fwd;
  dnnl::batch_normalization_backward bwd;
};

Norm& Get(const Key& k) {
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<Norm>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return *it->second;
  auto [n, h, w, c, relu, eps_bits] = k;
  float eps;
  uint32_t bits = static_cast<uint32_t>(eps_bits);
  std::memcpy(&eps, &bits, sizeof eps);
  auto b = std::make_unique<Norm>();
  b->act = memory::desc({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
  auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  if (relu) flags = flags | dnnl::normalization_flags::fuse_norm_relu;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto fpd = dnnl::batch_normalization_forward::primitive_desc(Engine(), dnnl::prop_kind::forward_training, b->act,
                                                               b->act, eps, flags, attr);
  auto bpd = dnnl::batch_normalization_backward::primitive_desc(Engine(), dnnl::prop_kind::backward, b->act, b->act,
                                                                b->act, eps, flags, fpd, attr);
  b->stat = fpd.mean_desc();
  b->mask = fpd.workspace_desc();
  b->fwd_scratch = fpd.scratchpad_desc();
  b->bwd_scratch = bpd.scratchpad_desc();
  b->fwd = dnnl::batch_normalization_forward(fpd);
  b->bwd = dnnl::batch_normalization_backward(bpd);
  return *cache.emplace(k, std::move(b)).first->second;
}

Key MakeKey(ffi::Span<const int64_t> x, int64_t relu, float eps) {
  uint32_t bits;
  std::memcpy(&bits, &eps, sizeof bits);
  return {x[0], x[1], x[2], x[3], relu ? 1 : 0, static_cast<int64_t>(bits)};
}

memory Mem(const memory::desc& d, const void* p) { return memory(d, Engine(), const_cast<void*>(p)); }

ffi::Error Fwd(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::F32> shift,
               ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::F32> mean, ffi::ResultBuffer<ffi::F32> var,
               ffi::ResultBuffer<ffi::U8> mask, ffi::ResultBuffer<ffi::U8> scratch, int64_t relu, float eps) {
  Norm& b = Get(MakeKey(x.dimensions(), relu, eps));
  if (scratch->size_bytes() < b.fwd_scratch.get_size() || (relu && mask->size_bytes() < b.mask.get_size())) {
    return ffi::Error::InvalidArgument("oneDNN batch-norm workspace too small");
  }
  dnnl::stream st(Engine());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, Mem(b.act, x.typed_data())},
                                       {DNNL_ARG_DST, Mem(b.act, y->typed_data())},
                                       {DNNL_ARG_MEAN, Mem(b.stat, mean->typed_data())},
                                       {DNNL_ARG_VARIANCE, Mem(b.stat, var->typed_data())},
                                       {DNNL_ARG_SCALE, Mem(b.stat, scale.typed_data())},
                                       {DNNL_ARG_SHIFT, Mem(b.stat, shift.typed_data())},
                                       {DNNL_ARG_SCRATCHPAD, Mem(b.fwd_scratch, scratch->typed_data())}};
  if (relu) args[DNNL_ARG_WORKSPACE] = Mem(b.mask, mask->typed_data());
  b.fwd.execute(st, args);
  st.wait();
  return ffi::Error::Success();
}

ffi::Error Bwd(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> mean,
               ffi::Buffer<ffi::F32> var, ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::U8> mask,
               ffi::ResultBuffer<ffi::F32> dx, ffi::ResultBuffer<ffi::F32> dscale,
               ffi::ResultBuffer<ffi::F32> dshift, ffi::ResultBuffer<ffi::U8> scratch, int64_t relu, float eps) {
  Norm& b = Get(MakeKey(x.dimensions(), relu, eps));
  if (scratch->size_bytes() < b.bwd_scratch.get_size() || (relu && mask.size_bytes() < b.mask.get_size())) {
    return ffi::Error::InvalidArgument("oneDNN batch-norm workspace too small");
  }
  dnnl::stream st(Engine());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, Mem(b.act, x.typed_data())},
                                       {DNNL_ARG_DIFF_DST, Mem(b.act, dy.typed_data())},
                                       {DNNL_ARG_MEAN, Mem(b.stat, mean.typed_data())},
                                       {DNNL_ARG_VARIANCE, Mem(b.stat, var.typed_data())},
                                       {DNNL_ARG_SCALE, Mem(b.stat, scale.typed_data())},
                                       {DNNL_ARG_DIFF_SRC, Mem(b.act, dx->typed_data())},
                                       {DNNL_ARG_DIFF_SCALE, Mem(b.stat, dscale->typed_data())},
                                       {DNNL_ARG_DIFF_SHIFT, Mem(b.stat, dshift->typed_data())},
                                       {DNNL_ARG_SCRATCHPAD, Mem(b.bwd_scratch, scratch->typed_data())}};
  if (relu) args[DNNL_ARG_WORKSPACE] = Mem(b.mask, mask.typed_data());
  b.bwd.execute(st, args);
  st.wait();
  return ffi::Error::Success();
}

}  // namespace

// Sizes in bytes of the relu mask, the forward and the backward scratchpad of the normalization `key`
// (n, h, w, c, relu, epsilon's bits), written to out[0..2]; returns -1 when oneDNN has no kernel for it.
extern "C" int32_t duality_onednn_bn_bytes(const int64_t* key, int64_t* out) {
  Key k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = key[i];
  try {
    Norm& b = Get(k);
    out[0] = k[4] ? static_cast<int64_t>(b.mask.get_size()) : 0;
    out[1] = static_cast<int64_t>(b.fwd_scratch.get_size());
    out[2] = static_cast<int64_t>(b.bwd_scratch.get_size());
    return 0;
  } catch (const std::exception&) {
    return -1;
  }
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(duality_onednn_bn_fwd, Fwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scale
                                  .Arg<ffi::Buffer<ffi::F32>>()  // shift
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y
                                  .Ret<ffi::Buffer<ffi::F32>>()  // mean
                                  .Ret<ffi::Buffer<ffi::F32>>()  // biased variance
                                  .Ret<ffi::Buffer<ffi::U8>>()   // relu mask
                                  .Ret<ffi::Buffer<ffi::U8>>()   // scratchpad
                                  .Attr<int64_t>("relu")
                                  .Attr<float>("eps"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(duality_onednn_bn_bwd, Bwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // mean
                                  .Arg<ffi::Buffer<ffi::F32>>()  // variance
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scale
                                  .Arg<ffi::Buffer<ffi::U8>>()   // relu mask
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dx
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dscale
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dshift
                                  .Ret<ffi::Buffer<ffi::U8>>()   // scratchpad
                                  .Attr<int64_t>("relu")
                                  .Attr<float>("eps"));
