#pragma once
// Image augmentation (`data.augment`): torchvision's transforms as ATen tensor ops, and the
// per-sample pipeline the image readers run on decoded images.
//
// - The ops (namespace aug) match torchvision 0.14's tensor path
//   (torchvision/transforms/functional_tensor.py) op by op, so their uint8 results are the same
//   bytes: float math, then truncation (`.to(uint8)`) for the colour ops and grayscale, and
//   rounding for resize, exactly where torchvision does each. tests/data/augment_test.cpp
//   checks them against fixtures made by torchvision (tests/golden/make_augment_golden.py).
//   DomainBed applies its transforms to PIL images; PIL's resize differs slightly from the
//   tensor path's antialiased bilinear resize, and we match the tensor path.
// - Randomness comes from aug::Rng, a counter-based generator seeded per sample by the caller
//   (aug::sample_seed(seed, step, rank, sample)), so a resumed run redraws the same crops,
//   flips and jitter: nothing depends on global state, thread count or earlier samples.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/torch_fwd.h"

namespace oodt {
namespace aug {

// Images are uint8 [C, H, W] (C = 3, or 1 where said; also [N, C, H, W] batches), results uint8
// like torchvision.transforms.functional on uint8 tensors. The colour ops also take float32
// images in [0, 1], as torchvision does (bound 1, no truncation).

// Bilinear resize (F.resize(..., InterpolationMode.BILINEAR, antialias)): float interpolation,
// then round and cast. Returns the input itself when the size is unchanged, as torchvision does.
at::Tensor resize(const at::Tensor& img, int64_t h, int64_t w, bool antialias = true);
// What resizes a single uint8 image with antialias: a loop of data/augment_u8.h that
// reproduces this ATen's float kernel on this CPU (it says how it rounds), or "aten" when none
// does (then ATen's kernel runs).
std::string resize_kernel();
// A window of the image; parts outside the image are zero (torchvision pads with 0).
at::Tensor crop(const at::Tensor& img, int64_t top, int64_t left, int64_t h, int64_t w);
// The centred window (offsets rounded half to even, as Python's round()); zero-padded when
// larger than the image.
at::Tensor center_crop(const at::Tensor& img, int64_t h, int64_t w);
at::Tensor resized_crop(const at::Tensor& img, int64_t top, int64_t left, int64_t h, int64_t w, int64_t out_h,
                        int64_t out_w, bool antialias = true);
at::Tensor hflip(const at::Tensor& img);
// factor >= 0; blends with black.
at::Tensor adjust_brightness(const at::Tensor& img, double factor);
// factor >= 0; blends with the mean of the (uint8-truncated) grayscale image.
at::Tensor adjust_contrast(const at::Tensor& img, double factor);
// factor >= 0; blends with the grayscale image. A 1-channel image is returned as is.
at::Tensor adjust_saturation(const at::Tensor& img, double factor);
// hue_factor in [-0.5, 0.5]; shifts the hue through HSV. A 1-channel image is returned as is.
at::Tensor adjust_hue(const at::Tensor& img, double hue_factor);
// ITU-R 601-2 luma (0.2989, 0.587, 0.114), truncated for uint8; out_channels 1 or 3 (3: the
// same plane repeated). A 1-channel image is returned as a copy, as torchvision does.
at::Tensor rgb_to_grayscale(const at::Tensor& img, int64_t out_channels);
// (x - mean) / std per channel in float32, mean and std given as 1 or C values.
at::Tensor normalize(const at::Tensor& img_float01, const std::vector<double>& mean, const std::vector<double>& std);

// The seed of one sample's draws: a mix of the run seed, the step, the rank and the sample's
// position in the rank's batch (salted, so it is no other stream's seed).
uint64_t sample_seed(uint64_t seed, int64_t step, int64_t rank, int64_t sample);

// A small counter-based generator: the n-th draw is splitmix64's finaliser of (key + n * gamma),
// so it holds no state but a counter, copies are independent, and the same seed gives the same
// numbers on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();                    // [0, 1), 53 random bits
  double uniform(double a, double b);  // [a, b)
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi), without modulo bias; hi > lo
  bool bernoulli(double p);            // uniform() < p (as torch.rand(1) < p)
  std::array<int, 4> permutation4();   // a uniformly random order of 0..3 (torch.randperm(4))
  // An independent stream for sub-task `tag` (each op draws from its own, so switching one op
  // off does not change the others' draws).
  Rng split(uint64_t tag) const;

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

struct CropBox {
  int64_t top, left, height, width;
};

// torchvision's RandomResizedCrop.get_params: up to 10 attempts, each with an area fraction
// uniform in [scale_lo, scale_hi] and a log-uniform aspect ratio (w / h) in [ratio_lo, ratio_hi],
// side lengths rounded half to even; the first that fits is placed uniformly. Otherwise the
// centred crop of the whole image, narrowed to the ratio range.
CropBox random_resized_crop_params(int64_t h, int64_t w, double scale_lo, double scale_hi, double ratio_lo,
                                   double ratio_hi, Rng& rng);

}  // namespace aug

// The `data.augment` config section. `preset` sets the defaults of the other keys; each can
// still be set. `none`: no augmentation (size 0: the stored size; only /255 and `normalize`).
// `domainbed`: DomainBed's transforms (size 224, random_resized_crop scale [0.7, 1], hflip 0.5,
// color_jitter 0.3 x 4, grayscale 0.1, eval: resize to 224 x 224, ImageNet normalisation).
struct AugmentOptions {
  std::string preset = "none";
  // Output height = width; 0 keeps the stored size (then no train op may need a size).
  int64_t size = 0;
  // Train: RandomResizedCrop to size x size. Off: train images get the eval resize.
  bool random_resized_crop = false;
  double scale_lo = 0.08, scale_hi = 1.0;            // torchvision's defaults
  double ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;
  double hflip = 0;  // probability of a horizontal flip
  // Train: torchvision's ColorJitter: factors uniform in [max(0, 1 - x), 1 + x] (hue in
  // [-hue, hue]); 0 switches that op off; the ops run in a random order. Config:
  // `color_jitter: {brightness, contrast, saturation, hue}` or `color_jitter: false`.
  double brightness = 0, contrast = 0, saturation = 0, hue = 0;
  double grayscale = 0;  // probability of RandomGrayscale (3 equal channels)
  // Eval (and train without random_resized_crop), when size > 0: `square` resizes to
  // size x size; `shorter_side` resizes the shorter side to floor(size / crop_pct), keeping the
  // aspect ratio, then takes the centred size x size (crop_pct 0.875: ImageNet's 256 -> 224).
  std::string eval_resize = "square";
  double crop_pct = 0.875;
  bool antialias = true;  // resizes use antialiased bilinear interpolation
  // After /255: none | imagenet | clip | {mean: [...], std: [...]} (1 or 3 values each).
  std::string normalize = "none";  // the name, or "custom"
  std::vector<double> mean, std;   // empty: no normalisation

  // Whether the pipeline does more than scale the stored pixels by 1/255 (a resize, any random
  // op, or a normalisation).
  bool active() const {
    return size > 0 || random_resized_crop || hflip > 0 || brightness > 0 || contrast > 0 || saturation > 0 || hue > 0 ||
           grayscale > 0 || !mean.empty();
  }
  // Reads and validates every key of `cfg` (the `data.augment` section), then cfg.finish().
  static AugmentOptions from_config(ConfigReader& cfg);
  // The preset's options (from_config's defaults).
  static AugmentOptions preset_options(const std::string& preset);
};

// Everything one training sample draws, so a draw can be logged, replayed or checked.
struct AugmentDraw {
  bool crop = false;
  aug::CropBox box{0, 0, 0, 0};
  bool flip = false;
  std::array<int, 4> order{0, 1, 2, 3};  // 0 brightness, 1 contrast, 2 saturation, 3 hue
  bool jitter[4] = {false, false, false, false};
  double factor[4] = {1, 1, 1, 0};
  bool gray = false;
};

// The per-sample pipeline: decoded uint8 RGB [H, W, 3] (HWC, as the codec returns; 1 channel
// also works) in, float32 [C, size, size] out (scaled to [0, 1], then normalised if asked).
// Train: resized crop (or the eval resize), flip, colour jitter, grayscale, in DomainBed's
// order, drawn from an Rng seeded by `seed` (the caller derives it with aug::sample_seed).
// Eval is deterministic. Thread-safe (const, no shared state).
class AugmentPipeline {
 public:
  explicit AugmentPipeline(AugmentOptions o);
  at::Tensor apply(const at::Tensor& rgb_hwc, bool train, uint64_t seed) const;
  // The draws of one training sample for an h x w image.
  AugmentDraw draw(int64_t h, int64_t w, uint64_t seed) const;
  // The training path with given draws (apply(img, true, seed) = apply_draw(img, draw(h, w, seed))).
  at::Tensor apply_draw(const at::Tensor& rgb_hwc, const AugmentDraw& d) const;
  const AugmentOptions& options() const { return o_; }

 private:
  at::Tensor eval_resize(const at::Tensor& chw) const;
  at::Tensor train_path(at::Tensor chw, const AugmentDraw& d) const;
  at::Tensor finish(const at::Tensor& chw_uint8) const;
  AugmentOptions o_;
};

}  // namespace oodt
