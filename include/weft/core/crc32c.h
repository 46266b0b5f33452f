// CRC32C (Castagnoli: reflected polynomial 0x82F63B78, initial and final XOR 0xFFFFFFFF),
// with the SSE4.2 instruction where the CPU has it and slicing-by-8 tables otherwise.
// Chain calls by passing the previous result as `crc` (0 to start).
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft {

uint32_t Crc32c(uint32_t crc, const void* data, size_t n);

namespace internal {
// The table-driven path alone (what CPUs without SSE4.2 run), for tests.
uint32_t Crc32cTables(uint32_t crc, const void* data, size_t n);
}  // namespace internal

}  // namespace weft
