// Doorbells: pollable descriptors that another process can make readable. A doorbell is an
// abstract-namespace Unix datagram socket named by a string (it vanishes with its process);
// ringing it sends one byte. Shared by channels, topics and bus members (their WaitFd).
// Thread rule: a doorbell's descriptor belongs to its owner; any thread may ring.
#pragma once

#include <string>

#include "weft/core/status.h"

namespace weft::shm {

// Binds a doorbell at `name` (for example "weft.frames.c.3"); returns its descriptor.
Result<int> BindDoorbell(const std::string& name);
// Reads and discards whatever rang, so that the descriptor is quiet until the next ring.
void DrainDoorbell(int fd);
// Rings doorbell `name` from this process; `*send_fd` caches a sending socket (-1 at first).
// A full or absent doorbell is ignored: a full one is readable already.
void RingDoorbell(const std::string& name, int* send_fd);

}  // namespace weft::shm
