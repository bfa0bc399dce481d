// Detection pictures and the bitmap font.
#include "drivers/draw.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>

#include "core/grad_mode.h"

namespace tessera::driver {

namespace {

// 5x7 glyphs, one byte per row, bit 4 = leftmost column.
std::array<uint8_t, 7> glyph(char c) {
  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  switch (c) {
    case '0': return {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E};
    case '1': return {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E};
    case '2': return {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F};
    case '3': return {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E};
    case '4': return {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02};
    case '5': return {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E};
    case '6': return {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E};
    case '7': return {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08};
    case '8': return {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E};
    case '9': return {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C};
    case 'A': return {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11};
    case 'B': return {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E};
    case 'C': return {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E};
    case 'D': return {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C};
    case 'E': return {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F};
    case 'F': return {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10};
    case 'G': return {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F};
    case 'H': return {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11};
    case 'I': return {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E};
    case 'J': return {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C};
    case 'K': return {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11};
    case 'L': return {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F};
    case 'M': return {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11};
    case 'N': return {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11};
    case 'O': return {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E};
    case 'P': return {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10};
    case 'Q': return {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D};
    case 'R': return {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11};
    case 'S': return {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E};
    case 'T': return {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04};
    case 'U': return {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E};
    case 'V': return {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04};
    case 'W': return {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A};
    case 'X': return {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11};
    case 'Y': return {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04};
    case 'Z': return {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F};
    case '.': return {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C};
    case '-': return {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00};
    case ':': return {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00};
    case '%': return {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03};
    case '/': return {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00};
    case '_': return {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F};
    case ' ': return {0, 0, 0, 0, 0, 0, 0};
    default: return {0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F};  // an empty box for the rest
  }
}

// Distinct, saturated colours; label l takes kPalette[l % n].
const float kPalette[][3] = {{0.90f, 0.10f, 0.10f}, {0.10f, 0.60f, 0.95f}, {0.15f, 0.80f, 0.25f}, {0.95f, 0.75f, 0.10f},
                             {0.70f, 0.20f, 0.90f}, {0.10f, 0.85f, 0.85f}, {0.95f, 0.45f, 0.10f}, {0.90f, 0.30f, 0.60f}};

struct Canvas {
  std::vector<float> px;  // [3][H][W]
  int64_t H, W;
  void set(int64_t y, int64_t x, const float c[3], float alpha = 1.0f) {
    if (y < 0 || y >= H || x < 0 || x >= W) return;
    for (int k = 0; k < 3; ++k) {
      float& v = px[static_cast<size_t>((k * H + y) * W + x)];
      v = v * (1 - alpha) + c[k] * alpha;
    }
  }
};

Canvas to_canvas(const Tensor& image) {
  Tensor t = image.to(kCPU).to(kFloat32);
  if (t.dim() == 2) t = t.unsqueeze(0);
  TS_CHECK(t.dim() == 3 && (t.size(0) == 1 || t.size(0) == 3), "draw_detections: the image must be [1 or 3, H, W]");
  if (t.size(0) == 1) t = t.expand({3, t.size(1), t.size(2)});
  return Canvas{t.contiguous().to_vector<float>(), t.size(1), t.size(2)};
}

void text_on(Canvas& cv, const std::string& text, int64_t x, int64_t y, const float c[3], int64_t scale) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto g = glyph(text[i]);
    const int64_t ox = x + static_cast<int64_t>(i) * 6 * scale;
    for (int64_t r = 0; r < 7; ++r)
      for (int64_t col = 0; col < 5; ++col)
        if (g[static_cast<size_t>(r)] & (0x10 >> col))
          for (int64_t dy = 0; dy < scale; ++dy)
            for (int64_t dx = 0; dx < scale; ++dx) cv.set(y + r * scale + dy, ox + col * scale + dx, c);
  }
}

}  // namespace

void draw_text(Tensor& canvas, const std::string& text, int64_t x, int64_t y, const float rgb[3], int64_t scale) {
  Canvas cv = to_canvas(canvas);
  text_on(cv, text, x, y, rgb, scale);
  canvas = from_vector(cv.px, {3, cv.H, cv.W});
}

Tensor draw_detections(const Tensor& image, const Detections& d, const std::vector<std::string>& names, double threshold) {
  NoGradGuard no_grad;
  Canvas cv = to_canvas(image);
  const int64_t D = d.boxes.defined() ? d.boxes.size(0) : 0;
  if (D == 0) return from_vector(cv.px, {3, cv.H, cv.W});
  const auto boxes = d.boxes.to(kCPU).to(kFloat32).to_vector<float>();
  const auto scores = d.scores.to(kCPU).to(kFloat32).to_vector<float>();
  const auto labels = d.labels.to(kCPU).to(kInt64).to_vector<int64_t>();
  const bool masks = d.masks.defined() && d.masks.size(0) == D;
  TS_CHECK(!masks || (d.masks.size(2) == cv.H && d.masks.size(3) == cv.W), "draw_detections: masks must be [D, 1, H, W] of the image");
  const int64_t scale = std::max<int64_t>(1, std::min(cv.H, cv.W) / 300);
  // Masks first (lowest score first, so the best lie on top), then boxes and labels.
  for (int64_t i = D - 1; i >= 0; --i) {
    if (scores[static_cast<size_t>(i)] < threshold || !masks) continue;
    const float* c = kPalette[static_cast<size_t>(labels[static_cast<size_t>(i)]) % 8];
    const auto m = d.masks.select(0, i).select(0, 0).to(kCPU).to(kFloat32).contiguous().to_vector<float>();
    for (int64_t y = 0; y < cv.H; ++y)
      for (int64_t x = 0; x < cv.W; ++x)
        if (m[static_cast<size_t>(y * cv.W + x)] > 0.5f) cv.set(y, x, c, 0.5f);
  }
  for (int64_t i = D - 1; i >= 0; --i) {
    const size_t k = static_cast<size_t>(i);
    if (scores[k] < threshold) continue;
    const float* c = kPalette[static_cast<size_t>(labels[k]) % 8];
    const int64_t x0 = static_cast<int64_t>(boxes[k * 4]), y0 = static_cast<int64_t>(boxes[k * 4 + 1]);
    const int64_t x1 = static_cast<int64_t>(boxes[k * 4 + 2]), y1 = static_cast<int64_t>(boxes[k * 4 + 3]);
    for (int64_t t = 0; t < scale; ++t) {
      for (int64_t x = x0; x <= x1; ++x) {
        cv.set(y0 + t, x, c);
        cv.set(y1 - t, x, c);
      }
      for (int64_t y = y0; y <= y1; ++y) {
        cv.set(y, x0 + t, c);
        cv.set(y, x1 - t, c);
      }
    }
    const size_t label = static_cast<size_t>(labels[k]);
    char score[16];
    std::snprintf(score, sizeof(score), " %.2f", static_cast<double>(scores[k]));
    const std::string text = (label < names.size() ? names[label] : std::to_string(label)) + score;
    // The label on a filled band above the box (inside it when the box touches the top).
    const int64_t th = 9 * scale, tw = static_cast<int64_t>(text.size()) * 6 * scale + scale;
    const int64_t ty = y0 - th >= 0 ? y0 - th : y0;
    for (int64_t y = ty; y < ty + th; ++y)
      for (int64_t x = x0; x < x0 + tw; ++x) cv.set(y, x, c);
    const float white[3] = {1.f, 1.f, 1.f};
    text_on(cv, text, x0 + scale, ty + scale, white, scale);
  }
  return from_vector(cv.px, {3, cv.H, cv.W});
}

}  // namespace tessera::driver
