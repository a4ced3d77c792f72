// oneDNN convolutions as XLA:CPU FFI custom calls: NHWC activations, HWIO kernels, float32, oneDNN 3.
//
// Three handlers, one per pass of a 2-D convolution with symmetric zero padding:
//   duality_onednn_conv_fwd          y  = conv(x, w)
//   duality_onednn_conv_bwd_data     dx = the input gradient of y's gradient g
//   duality_onednn_conv_bwd_weights  dw = the kernel gradient
// The activations stay in XLA's row-major NHWC buffers (oneDNN's `nhwc` tag); the kernel is reordered
// between XLA's HWIO and the layout oneDNN's kernel for this shape prefers (a few hundred KB). Primitives
// are built once per shape and kept: they are immutable and safe to execute from several threads at once.
//
// No pass allocates memory. Each returns a second, byte buffer -- its workspace -- which XLA places in
// the program's temporary allocation like any other intermediate: the reordered kernel, then oneDNN's
// scratchpad. `duality_onednn_workspace_bytes` tells the Python side its size when it traces the call.
// (Letting oneDNN allocate per call, from glibc's never-trimmed heap (duality/runtime.py), fragmented
// it: ResNet-18's process grew by 1.8 GB every ten steps or so, each growth a step of page faults.)
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

#if DNNL_VERSION_MAJOR < 3
#error "duality's oneDNN convolutions need oneDNN >= 3 (pip install onednn-devel-cpu-gomp)"
#endif

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

constexpr size_t kAlign = 64;

size_t Aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

dnnl::engine& Engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// n, h, w, c, o, kh, kw, sh, sw, ph, pw, ho, wo
using Key = std::array<int64_t, 13>;
enum Pass { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };

// One pass: its primitive, the kernel layout it works in, the reorder between that and XLA's HWIO
// (absent when they agree), and where its pieces sit in the workspace.
struct Step {
  dnnl::primitive prim;
  memory::desc kernel;       // the kernel (or its gradient) in oneDNN's layout
  bool reorder = false;      // kernel != HWIO
  dnnl::reorder to_or_from;  // HWIO -> kernel (forward, input gradient); kernel -> HWIO (weight gradient)
  memory::desc scratch;      // oneDNN's scratchpad, max over the pass and its reorder
  size_t scratch_at = 0, bytes = 0;
};

struct Conv {
  memory::desc src, dst, hwio;
  std::array<Step, 3> steps;
};

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

void Plan(Step& s, const memory::desc& hwio, const memory::desc& kernel, const memory::desc& prim_scratch,
          bool into_hwio) {
  s.kernel = kernel;
  s.reorder = !(kernel == hwio);
  size_t scratch = prim_scratch.get_size();
  if (s.reorder) {
    auto attr = UserScratchpad();
    auto pd = into_hwio ? dnnl::reorder::primitive_desc(Engine(), kernel, Engine(), hwio, attr)
                        : dnnl::reorder::primitive_desc(Engine(), hwio, Engine(), kernel, attr);
    s.to_or_from = dnnl::reorder(pd);
    scratch = std::max(scratch, pd.scratchpad_desc().get_size());  // the two never run at once
  }
  s.scratch = memory::desc({static_cast<int64_t>(scratch)}, dt::u8, tag::x);
  s.scratch_at = s.reorder ? Aligned(kernel.get_size()) : 0;
  s.bytes = s.scratch_at + Aligned(scratch);
}

Conv& Get(const Key& k) {
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<Conv>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return *it->second;
  auto [n, h, w, c, o, kh, kw, sh, sw, ph, pw, ho, wo] = k;
  auto c_ = std::make_unique<Conv>();
  memory::dims src{n, c, h, w}, wei{o, c, kh, kw}, dst{n, o, ho, wo}, strides{sh, sw}, pad{ph, pw};
  // the right padding makes oneDNN's output size equal to XLA's (floor division)
  memory::dims pad_r{(ho - 1) * sh + kh - h - ph, (wo - 1) * sw + kw - w - pw};
  c_->src = memory::desc(src, dt::f32, tag::nhwc);
  c_->dst = memory::desc(dst, dt::f32, tag::nhwc);
  c_->hwio = memory::desc(wei, dt::f32, tag::hwio);
  auto any = memory::desc(wei, dt::f32, tag::any);
  auto alg = dnnl::algorithm::convolution_direct;
  auto attr = UserScratchpad();
  auto fpd = dnnl::convolution_forward::primitive_desc(Engine(), dnnl::prop_kind::forward_training, alg, c_->src,
                                                       any, c_->dst, strides, pad, pad_r, attr);
  auto bdpd = dnnl::convolution_backward_data::primitive_desc(Engine(), alg, c_->src, any, c_->dst, strides, pad,
                                                              pad_r, fpd, attr);
  auto bwpd = dnnl::convolution_backward_weights::primitive_desc(Engine(), alg, c_->src, any, c_->dst, strides,
                                                                 pad, pad_r, fpd, attr);
  c_->steps[kFwd].prim = dnnl::convolution_forward(fpd);
  Plan(c_->steps[kFwd], c_->hwio, fpd.weights_desc(), fpd.scratchpad_desc(), false);
  c_->steps[kBwdData].prim = dnnl::convolution_backward_data(bdpd);
  Plan(c_->steps[kBwdData], c_->hwio, bdpd.weights_desc(), bdpd.scratchpad_desc(), false);
  c_->steps[kBwdWeights].prim = dnnl::convolution_backward_weights(bwpd);
  Plan(c_->steps[kBwdWeights], c_->hwio, bwpd.diff_weights_desc(), bwpd.scratchpad_desc(), true);
  return *cache.emplace(k, std::move(c_)).first->second;
}

Key MakeKey(ffi::Span<const int64_t> x, ffi::Span<const int64_t> wt, ffi::Span<const int64_t> y, int64_t sh,
            int64_t sw, int64_t ph, int64_t pw) {
  return {x[0], x[1], x[2], x[3], wt[3], wt[0], wt[1], sh, sw, ph, pw, y[1], y[2]};
}

// Runs pass `p` of `c`: `a` and `b` are its two operands in oneDNN's argument names, `hwio` XLA's kernel (an
// input for the forward pass and the input gradient, the result for the weight gradient).
ffi::Error Run(Conv& c, Pass p, int a_arg, memory a, int b_arg, memory b, int kernel_arg, float* hwio,
               ffi::ResultBuffer<ffi::U8>& workspace) {
  Step& s = c.steps[p];
  if (workspace->size_bytes() < s.bytes) return ffi::Error::InvalidArgument("oneDNN workspace too small");
  auto* base = workspace->typed_data();
  dnnl::stream st(Engine());
  memory user(c.hwio, Engine(), hwio);
  memory kernel = s.reorder ? memory(s.kernel, Engine(), base) : user;
  memory scratch(s.scratch, Engine(), base + s.scratch_at);
  if (s.reorder && p != kBwdWeights) {
    s.to_or_from.execute(st, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, kernel}, {DNNL_ARG_SCRATCHPAD, scratch}});
  }
  s.prim.execute(st, {{a_arg, a}, {b_arg, b}, {kernel_arg, kernel}, {DNNL_ARG_SCRATCHPAD, scratch}});
  if (s.reorder && p == kBwdWeights) {
    s.to_or_from.execute(st, {{DNNL_ARG_FROM, kernel}, {DNNL_ARG_TO, user}, {DNNL_ARG_SCRATCHPAD, scratch}});
  }
  st.wait();
  return ffi::Error::Success();
}

ffi::Error Fwd(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> y,
               ffi::ResultBuffer<ffi::U8> workspace, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  Conv& c = Get(MakeKey(x.dimensions(), w.dimensions(), y->dimensions(), sh, sw, ph, pw));
  return Run(c, kFwd, DNNL_ARG_SRC, memory(c.src, Engine(), x.typed_data()), DNNL_ARG_DST,
             memory(c.dst, Engine(), y->typed_data()), DNNL_ARG_WEIGHTS, w.typed_data(), workspace);
}

ffi::Error BwdData(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> dx,
                   ffi::ResultBuffer<ffi::U8> workspace, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  Conv& c = Get(MakeKey(dx->dimensions(), w.dimensions(), g.dimensions(), sh, sw, ph, pw));
  return Run(c, kBwdData, DNNL_ARG_DIFF_DST, memory(c.dst, Engine(), g.typed_data()), DNNL_ARG_DIFF_SRC,
             memory(c.src, Engine(), dx->typed_data()), DNNL_ARG_WEIGHTS, w.typed_data(), workspace);
}

ffi::Error BwdWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dw,
                      ffi::ResultBuffer<ffi::U8> workspace, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  Conv& c = Get(MakeKey(x.dimensions(), dw->dimensions(), g.dimensions(), sh, sw, ph, pw));
  return Run(c, kBwdWeights, DNNL_ARG_SRC, memory(c.src, Engine(), x.typed_data()), DNNL_ARG_DIFF_DST,
             memory(c.dst, Engine(), g.typed_data()), DNNL_ARG_DIFF_WEIGHTS, dw->typed_data(), workspace);
}

}  // namespace

// The workspace, in bytes, that pass `pass` (0 forward, 1 input gradient, 2 weight gradient) of the
// convolution `key` (n, h, w, c, o, kh, kw, sh, sw, ph, pw, ho, wo) needs; -1 when oneDNN has no kernel.
extern "C" int64_t duality_onednn_workspace_bytes(const int64_t* key, int32_t pass) {
  Key k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = key[i];
  try {
    return static_cast<int64_t>(Get(k).steps.at(pass).bytes);
  } catch (const std::exception&) {
    return -1;
  }
}

// Each pass takes two float32 buffers, returns one and its workspace, and reads the stride and padding as
// attributes.
#define DUALITY_CONV_BINDING                                                                      \
  ffi::Ffi::Bind()                                                                                \
      .Arg<ffi::Buffer<ffi::F32>>()                                                               \
      .Arg<ffi::Buffer<ffi::F32>>()                                                               \
      .Ret<ffi::Buffer<ffi::F32>>()                                                               \
      .Ret<ffi::Buffer<ffi::U8>>()                                                                \
      .Attr<int64_t>("sh")                                                                        \
      .Attr<int64_t>("sw")                                                                        \
      .Attr<int64_t>("ph")                                                                        \
      .Attr<int64_t>("pw")

XLA_FFI_DEFINE_HANDLER_SYMBOL(duality_onednn_conv_fwd, Fwd, DUALITY_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(duality_onednn_conv_bwd_data, BwdData, DUALITY_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(duality_onednn_conv_bwd_weights, BwdWeights, DUALITY_CONV_BINDING);
