#define _GNU_SOURCE
#include "parley_socket.h"
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <stdio.h>

struct parley_batch {
    int count;
    int slot_size;
    uint8_t *memory;
    struct mmsghdr *messages;
    struct iovec *vectors;
    struct sockaddr_storage *addresses;
};

parley_batch *parley_batch_create(int count, int slot_size) {
    parley_batch *b = calloc(1, sizeof(parley_batch));
    if (!b) return NULL;
    b->count = count;
    b->slot_size = slot_size;
    b->memory = calloc((size_t)count, (size_t)slot_size);
    b->messages = calloc((size_t)count, sizeof(struct mmsghdr));
    b->vectors = calloc((size_t)count, sizeof(struct iovec));
    b->addresses = calloc((size_t)count, sizeof(struct sockaddr_storage));
    if (!b->memory || !b->messages || !b->vectors || !b->addresses) { parley_batch_free(b); return NULL; }
    for (int i = 0; i < count; i++) {
        b->vectors[i].iov_base = b->memory + (size_t)i * (size_t)slot_size;
        b->vectors[i].iov_len = (size_t)slot_size;
        b->messages[i].msg_hdr.msg_iov = &b->vectors[i];
        b->messages[i].msg_hdr.msg_iovlen = 1;
        b->messages[i].msg_hdr.msg_name = &b->addresses[i];
        b->messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    }
    return b;
}

void parley_batch_free(parley_batch *b) {
    if (!b) return;
    free(b->memory); free(b->messages); free(b->vectors); free(b->addresses); free(b);
}

uint8_t *parley_batch_buffer(parley_batch *b, int index) { return b->memory + (size_t)index * (size_t)b->slot_size; }
int parley_batch_slot_size(const parley_batch *b) { return b->slot_size; }
int parley_batch_count(const parley_batch *b) { return b->count; }

int parley_batch_receive(int fd, parley_batch *b) {
    for (int i = 0; i < b->count; i++) {
        b->vectors[i].iov_len = (size_t)b->slot_size;
        b->messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        b->messages[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(fd, b->messages, (unsigned)b->count, MSG_DONTWAIT, NULL);
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
    return n;
}

int parley_batch_length(const parley_batch *b, int index) {
    if (b->messages[index].msg_hdr.msg_flags & MSG_TRUNC) return -1;
    return (int)b->messages[index].msg_len;
}

void parley_batch_address(const parley_batch *b, int index, uint8_t *family, uint8_t *ip, uint16_t *port) {
    const struct sockaddr_storage *s = &b->addresses[index];
    memset(ip, 0, 16);
    if (s->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)s;
        *family = 4; memcpy(ip, &in->sin_addr, 4); *port = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)s;
        // IPv4-mapped addresses on a dual-stack socket are reported as IPv4.
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) { *family = 4; memcpy(ip, &in6->sin6_addr.s6_addr[12], 4); }
        else { *family = 6; memcpy(ip, &in6->sin6_addr, 16); }
        *port = ntohs(in6->sin6_port);
    }
}

void parley_batch_set(parley_batch *b, int index, int length, uint8_t family, const uint8_t *ip, uint16_t port, int ipv6_socket) {
    struct sockaddr_storage *s = &b->addresses[index];
    memset(s, 0, sizeof(*s));
    if (family == 4 && !ipv6_socket) {
        struct sockaddr_in *in = (struct sockaddr_in *)s;
        in->sin_family = AF_INET; memcpy(&in->sin_addr, ip, 4); in->sin_port = htons(port);
        b->messages[index].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)s;
        in6->sin6_family = AF_INET6; in6->sin6_port = htons(port);
        if (family == 4) { in6->sin6_addr.s6_addr[10] = 0xff; in6->sin6_addr.s6_addr[11] = 0xff; memcpy(&in6->sin6_addr.s6_addr[12], ip, 4); }
        else memcpy(&in6->sin6_addr, ip, 16);
        b->messages[index].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
    }
    b->vectors[index].iov_len = (size_t)length;
}

int parley_batch_send(int fd, parley_batch *b, int n) {
    int sent = 0;
    while (sent < n) {
        int r = sendmmsg(fd, b->messages + sent, (unsigned)(n - sent), MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            sent += 1;  // skip the datagram that failed (unreachable peer, bad address)
            continue;
        }
        sent += r;
    }
    return sent;
}

/// The address to bind: host:port (host "" or NULL: every address, IPv4 and IPv6, as "::").
static struct addrinfo *passive_address(const char *host, uint16_t port, int socktype) {
    struct addrinfo hints, *result = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    const char *node = (host && host[0]) ? host : "::";
    return getaddrinfo(node, service, &hints, &result) == 0 ? result : NULL;
}

int parley_udp_bind(const char *host, uint16_t port, int *error_out) {
    struct addrinfo *result = passive_address(host, port, SOCK_DGRAM);
    if (!result) { *error_out = EINVAL; return -1; }
    int fd = socket(result->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { *error_out = errno; freeaddrinfo(result); return -1; }
    if (result->ai_family == AF_INET6) {
        int off = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
    int size = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    if (bind(fd, result->ai_addr, result->ai_addrlen) < 0) {
        *error_out = errno; close(fd); freeaddrinfo(result); return -1;
    }
    freeaddrinfo(result);
    return fd;
}

int parley_udp_local_port(int fd) {
    struct sockaddr_storage s; socklen_t len = sizeof(s);
    if (getsockname(fd, (struct sockaddr *)&s, &len) < 0) return -1;
    if (s.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&s)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&s)->sin6_port);
}

int parley_udp_is_ipv6(int fd) {
    struct sockaddr_storage s; socklen_t len = sizeof(s);
    if (getsockname(fd, (struct sockaddr *)&s, &len) < 0) return 0;
    return s.ss_family == AF_INET6;
}

#include <sys/eventfd.h>
int parley_wake_fd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

#include <sys/prctl.h>
void parley_name_current_thread(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }

int parley_udp_send(int fd, const uint8_t *buffer, int length, uint8_t family, const uint8_t *ip, uint16_t port) {
    struct sockaddr_storage s; socklen_t len;
    memset(&s, 0, sizeof(s));
    int ipv6_socket = parley_udp_is_ipv6(fd);
    if (family == 4 && !ipv6_socket) {
        struct sockaddr_in *in = (struct sockaddr_in *)&s;
        in->sin_family = AF_INET; memcpy(&in->sin_addr, ip, 4); in->sin_port = htons(port); len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s;
        in6->sin6_family = AF_INET6; in6->sin6_port = htons(port);
        if (family == 4) { in6->sin6_addr.s6_addr[10] = 0xff; in6->sin6_addr.s6_addr[11] = 0xff; memcpy(&in6->sin6_addr.s6_addr[12], ip, 4); }
        else memcpy(&in6->sin6_addr, ip, 16);
        len = sizeof(*in6);
    }
    ssize_t r = sendto(fd, buffer, (size_t)length, MSG_DONTWAIT, (struct sockaddr *)&s, len);
    return r < 0 ? -errno : (int)r;
}

int parley_udp_receive(int fd, uint8_t *buffer, int capacity, uint8_t *family, uint8_t *ip, uint16_t *port) {
    struct sockaddr_storage s; socklen_t len = sizeof(s);
    ssize_t r = recvfrom(fd, buffer, (size_t)capacity, MSG_DONTWAIT, (struct sockaddr *)&s, &len);
    if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
    memset(ip, 0, 16);
    if (s.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&s;
        *family = 4; memcpy(ip, &in->sin_addr, 4); *port = ntohs(in->sin_port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) { *family = 4; memcpy(ip, &in6->sin6_addr.s6_addr[12], 4); }
        else { *family = 6; memcpy(ip, &in6->sin6_addr, 16); }
        *port = ntohs(in6->sin6_port);
    }
    return (int)r;
}

#include <netinet/tcp.h>
int parley_tcp_listen(const char *host, uint16_t port, int *error_out) {
    struct addrinfo *result = passive_address(host, port, SOCK_STREAM);
    if (!result) { *error_out = EINVAL; return -1; }
    int fd = socket(result->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { *error_out = errno; freeaddrinfo(result); return -1; }
    int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (result->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    if (bind(fd, result->ai_addr, result->ai_addrlen) < 0 || listen(fd, 128) < 0) {
        *error_out = errno; close(fd); freeaddrinfo(result); return -1;
    }
    freeaddrinfo(result);
    return fd;
}

int parley_tcp_accept(int fd, uint8_t *family, uint8_t *ip, uint16_t *port) {
    struct sockaddr_storage s; socklen_t len = sizeof(s);
    int client = accept4(fd, (struct sockaddr *)&s, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return -errno;
    int on = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    memset(ip, 0, 16);
    if (s.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&s;
        *family = 4; memcpy(ip, &in->sin_addr, 4); *port = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&s;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) { *family = 4; memcpy(ip, &in6->sin6_addr.s6_addr[12], 4); }
        else { *family = 6; memcpy(ip, &in6->sin6_addr, 16); }
        *port = ntohs(in6->sin6_port);
    }
    return client;
}
