#ifndef VMLET_BASE_ID_H_
#define VMLET_BASE_ID_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace vmlet {

// A new random identifier of 64 lowercase hex characters (256 bits from
// getrandom(2)), the form the CRI uses for sandbox and container ids.
std::string GenerateId();

// Whether `text` is non-empty and made of lowercase hex characters only.
bool IsHexId(std::string_view text);

// Nanoseconds since the Unix epoch (CLOCK_REALTIME), as the CRI reports times.
int64_t NowNanos();

}  // namespace vmlet

#endif  // VMLET_BASE_ID_H_
