// oneDNN convolutions as XLA:CPU FFI custom calls: NHWC activations, HWIO kernels, float32.
//
// Three handlers, one per pass of a 2-D convolution with symmetric zero padding:
//   duality_onednn_conv_fwd          y  = conv(x, w)
//   duality_onednn_conv_bwd_data     dx = the input gradient of y's gradient g
//   duality_onednn_conv_bwd_weights  dw = the kernel gradient
// The activations stay in XLA's row-major NHWC buffers (oneDNN's `nhwc` tag); the kernel is reordered
// between XLA's HWIO and the layout oneDNN's kernel for this shape prefers (a few hundred KB). Primitives
// are built once per shape and kept: they are immutable and safe to execute from several threads at once.
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <map>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// n, h, w, c, o, kh, kw, sh, sw, ph, pw, ho, wo
using Key = std::array<int64_t, 13>;

struct Conv {
  memory::desc src, dst, weights_user, fwd_weights, bwd_data_weights, bwd_weights_diff;
  memory::desc fwd_scratch, bwd_data_scratch, bwd_weights_scratch;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
};

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
  c_->weights_user = memory::desc(wei, dt::f32, tag::hwio);
  auto any = memory::desc(wei, dt::f32, tag::any);
  auto alg = dnnl::algorithm::convolution_direct;
  // Each call brings its own scratchpad: oneDNN's default one is shared by all primitives of the process,
  // and XLA runs independent custom calls at the same time from several threads.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto fpd = dnnl::convolution_forward::primitive_desc(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, c_->src, any, c_->dst, strides, pad,
                                      pad_r),
      attr, Engine());
  auto bdpd = dnnl::convolution_backward_data::primitive_desc(
      dnnl::convolution_backward_data::desc(alg, c_->src, any, c_->dst, strides, pad, pad_r), attr, Engine(), fpd);
  auto bwpd = dnnl::convolution_backward_weights::primitive_desc(
      dnnl::convolution_backward_weights::desc(alg, c_->src, any, c_->dst, strides, pad, pad_r), attr, Engine(),
      fpd);
  c_->fwd_scratch = fpd.scratchpad_desc();
  c_->bwd_data_scratch = bdpd.scratchpad_desc();
  c_->bwd_weights_scratch = bwpd.scratchpad_desc();
  c_->fwd_weights = fpd.weights_desc();
  c_->bwd_data_weights = bdpd.weights_desc();
  c_->bwd_weights_diff = bwpd.diff_weights_desc();
  c_->fwd = dnnl::convolution_forward(fpd);
  c_->bwd_data = dnnl::convolution_backward_data(bdpd);
  c_->bwd_weights = dnnl::convolution_backward_weights(bwpd);
  return *cache.emplace(k, std::move(c_)).first->second;
}

Key MakeKey(ffi::Span<const int64_t> x, ffi::Span<const int64_t> wt, ffi::Span<const int64_t> y, int64_t sh,
            int64_t sw, int64_t ph, int64_t pw) {
  return {x[0], x[1], x[2], x[3], wt[3], wt[0], wt[1], sh, sw, ph, pw, y[1], y[2]};
}

// XLA's HWIO kernel in the layout `want` oneDNN's primitive prefers (the buffer itself when they agree).
memory Reordered(dnnl::stream& s, const memory::desc& user, const memory::desc& want, float* data) {
  memory u(user, Engine(), data);
  if (user == want) return u;
  memory m(want, Engine());
  dnnl::reorder(u, m).execute(s, u, m);
  return m;
}

ffi::Error Fwd(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> y, int64_t sh,
               int64_t sw, int64_t ph, int64_t pw) {
  Conv& c = Get(MakeKey(x.dimensions(), w.dimensions(), y->dimensions(), sh, sw, ph, pw));
  dnnl::stream s(Engine());
  memory wm = Reordered(s, c.weights_user, c.fwd_weights, w.typed_data());
  memory xm(c.src, Engine(), x.typed_data()), ym(c.dst, Engine(), y->typed_data());
  memory scratch(c.fwd_scratch, Engine());
  c.fwd.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}, {DNNL_ARG_SCRATCHPAD, scratch}});
  s.wait();
  return ffi::Error::Success();
}

ffi::Error BwdData(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> dx, int64_t sh,
                   int64_t sw, int64_t ph, int64_t pw) {
  Conv& c = Get(MakeKey(dx->dimensions(), w.dimensions(), g.dimensions(), sh, sw, ph, pw));
  dnnl::stream s(Engine());
  memory wm = Reordered(s, c.weights_user, c.bwd_data_weights, w.typed_data());
  memory gm(c.dst, Engine(), g.typed_data()), dxm(c.src, Engine(), dx->typed_data());
  memory scratch(c.bwd_data_scratch, Engine());
  c.bwd_data.execute(s, {{DNNL_ARG_DIFF_DST, gm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, dxm},
                         {DNNL_ARG_SCRATCHPAD, scratch}});
  s.wait();
  return ffi::Error::Success();
}

ffi::Error BwdWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dw, int64_t sh,
                      int64_t sw, int64_t ph, int64_t pw) {
  Conv& c = Get(MakeKey(x.dimensions(), dw->dimensions(), g.dimensions(), sh, sw, ph, pw));
  dnnl::stream s(Engine());
  memory xm(c.src, Engine(), x.typed_data()), gm(c.dst, Engine(), g.typed_data());
  memory user(c.weights_user, Engine(), dw->typed_data());
  memory dwm = c.bwd_weights_diff == c.weights_user ? user : memory(c.bwd_weights_diff, Engine());
  memory scratch(c.bwd_weights_scratch, Engine());
  c.bwd_weights.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, gm}, {DNNL_ARG_DIFF_WEIGHTS, dwm},
                            {DNNL_ARG_SCRATCHPAD, scratch}});
  if (!(c.bwd_weights_diff == c.weights_user)) dnnl::reorder(dwm, user).execute(s, dwm, user);
  s.wait();
  return ffi::Error::Success();
}

}  // namespace

// Each pass takes two float32 buffers, returns one, and reads the stride and padding as attributes.
#define DUALITY_CONV_BINDING                                                                      \
  ffi::Ffi::Bind()                                                                                \
      .Arg<ffi::Buffer<ffi::F32>>()                                                               \
      .Arg<ffi::Buffer<ffi::F32>>()                                                               \
      .Ret<ffi::Buffer<ffi::F32>>()                                                               \
      .Attr<int64_t>("sh")                                                                        \
      .Attr<int64_t>("sw")                                                                        \
      .Attr<int64_t>("ph")                                                                        \
      .Attr<int64_t>("pw")

XLA_FFI_DEFINE_HANDLER_SYMBOL(duality_onednn_conv_fwd, Fwd, DUALITY_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(duality_onednn_conv_bwd_data, BwdData, DUALITY_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(duality_onednn_conv_bwd_weights, BwdWeights, DUALITY_CONV_BINDING);
