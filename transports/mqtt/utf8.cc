#include "transports/mqtt/utf8.h"

#include <cstdint>
#include <cstring>

namespace edgehub::transports::mqtt {

bool isValidMqttUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* end = p + text.size();
  while (p < end) {
    // ASCII fast path, eight bytes at a time: topics are almost always ASCII. A zero byte is
    // ASCII too, so the word test only proves "no high bit"; NUL is checked byte-wise below.
    if (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, 8);
      // High bit clear everywhere and no zero byte (the classic haszero trick).
      bool no_high = (word & 0x8080808080808080ULL) == 0;
      bool no_zero = ((word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL) == 0;
      if (no_high && no_zero) {
        p += 8;
        continue;
      }
    }
    uint8_t c = *p;
    if (c < 0x80) {
      if (c == 0) return false;
      ++p;
      continue;
    }
    int extra;
    uint32_t min;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      min = 0x80;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      min = 0x800;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      min = 0x10000;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte in lead position, or 0xF8..0xFF
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      uint8_t cc = p[i];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min) return false;                       // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;   // surrogate
    if (cp > 0x10FFFF) return false;
    p += extra + 1;
  }
  return true;
}

}  // namespace edgehub::transports::mqtt
