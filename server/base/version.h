#pragma once

namespace ringlb {
inline constexpr const char kVersion[] = "0.1.0";
}
