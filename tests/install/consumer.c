/* A C program built against an installed Weft with pkg-config (tests/python/test_install.py). */
#include <stdio.h>
#include <string.h>

#include "weft/weft.h"

int main(void) {
  if (weft_abi_version() != WEFT_ABI_VERSION) return 1;
  if (strcmp(weft_error_name(WEFT_ERESOURCE), "resource_exhausted") != 0) return 2;
  puts("c consumer ok");
  return 0;
}
