// Batched UDP I/O (recvmmsg/sendmmsg) for the SFU's media sockets, and the TCP ones of ICE-TCP. Swift cannot see struct
// mmsghdr without _GNU_SOURCE, so the batch lives here behind an opaque handle.
#ifndef PARLEY_SOCKET_H
#define PARLEY_SOCKET_H
#include <stdint.h>
#include <stddef.h>

typedef struct parley_batch parley_batch;

/// A batch of `count` datagram slots of `slot_size` bytes each, with their addresses.
parley_batch *parley_batch_create(int count, int slot_size);
void parley_batch_free(parley_batch *batch);
uint8_t *parley_batch_buffer(parley_batch *batch, int index);
int parley_batch_slot_size(const parley_batch *batch);
int parley_batch_count(const parley_batch *batch);

/// Receives up to `count` datagrams without blocking; returns how many (0 if none, -errno on error).
int parley_batch_receive(int fd, parley_batch *batch);
/// Length and source address of received datagram `index`. family is 4 or 6; ip is 16 bytes.
int parley_batch_length(const parley_batch *batch, int index);
void parley_batch_address(const parley_batch *batch, int index, uint8_t *family, uint8_t *ip, uint16_t *port);

/// Sets slot `index` to be sent: `length` bytes to the given address.
void parley_batch_set(parley_batch *batch, int index, int length, uint8_t family, const uint8_t *ip, uint16_t port, int ipv6_socket);
/// Sends slots 0..<n; returns how many went out (errors on one datagram skip it).
int parley_batch_send(int fd, parley_batch *batch, int n);

/// A non-blocking UDP socket bound to host:port (host "" or NULL means every address, IPv4 and IPv6).
int parley_udp_bind(const char *host, uint16_t port, int *error_out);
/// 1 if the socket is IPv6 (dual-stack), 0 for IPv4.
int parley_udp_is_ipv6(int fd);
/// Names the calling thread (15 characters at most are kept).
void parley_name_current_thread(const char *name);
/// A non-blocking eventfd to wake a worker loop.
int parley_wake_fd(void);
/// The port a socket is bound to.
int parley_udp_local_port(int fd);

/// One datagram to an address (family 4 or 6, ip 16 bytes); returns bytes sent or -errno.
int parley_udp_send(int fd, const uint8_t *buffer, int length, uint8_t family, const uint8_t *ip, uint16_t port);
/// One datagram without blocking; returns its length, 0 if none waits, or -errno; fills the source.
int parley_udp_receive(int fd, uint8_t *buffer, int capacity, uint8_t *family, uint8_t *ip, uint16_t *port);

/// A non-blocking TCP listening socket on host:port (ICE-TCP passive candidates, RFC 6544).
int parley_tcp_listen(const char *host, uint16_t port, int *error_out);
/// Accepts one connection without blocking: its fd (non-blocking, TCP_NODELAY), or -errno
/// (-EAGAIN: none waiting); fills the peer's address.
int parley_tcp_accept(int fd, uint8_t *family, uint8_t *ip, uint16_t *port);
#endif
