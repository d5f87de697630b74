/*
 * bench flooder: paced ARP requests or Neighbor Solicitations for one address,
 * with the latency of each answer (proxy rate benchmark, bench/proxy/rate.py).
 *
 *   flood IFNAME arp|ns TARGET SOURCE RATE COUNT MAX_S SETTLE_MS FIXED_SRC OUT
 *
 * Sends COUNT requests for TARGET out of IFNAME, request i at t0 + i/RATE
 * (never more than MAX_S seconds of sending), then listens SETTLE_MS more.
 * Every request is distinct: request i carries the sender MAC 02:b7:<i, 32
 * bits>, as ARP sender hardware address or as the NS source link-layer
 * option, and every answer goes back to that MAC (ARP: target hardware
 * address; NA: Ethernet destination), so each answer names its request.
 * FIXED_SRC=1 keeps the Ethernet source at IFNAME's own MAC (one requester
 * for a per-MAC rate limiter); 0 uses the per-request MAC there too.
 * SOURCE is the sender IPv4 (arp) or IPv6 (ns) address, the same for all.
 *
 * Requests and answers go through one AF_PACKET socket and are stamped with
 * CLOCK_MONOTONIC in this process. OUT receives COUNT little-endian int64:
 * the latency in ns of the first answer to request i, or -1. stdout gets one
 * JSON line of counters. Exit status 0 unless the socket could not be used.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64 /* sends between two looks at the receive queue */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "flood: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void put_id(unsigned char *mac, uint32_t id)
{
	mac[0] = 0x02;
	mac[1] = 0xb7;
	mac[2] = id >> 24;
	mac[3] = id >> 16;
	mac[4] = id >> 8;
	mac[5] = id;
}

static int get_id(const unsigned char *mac, uint32_t *id)
{
	if (mac[0] != 0x02 || mac[1] != 0xb7)
		return 0;
	*id = (uint32_t)mac[2] << 24 | (uint32_t)mac[3] << 16 | (uint32_t)mac[4] << 8 | mac[5];
	return 1;
}

static uint16_t icmp6_sum(const unsigned char *src, const unsigned char *dst,
			  const unsigned char *msg, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < 16; i += 2)
		sum += (src[i] << 8 | src[i + 1]) + (dst[i] << 8 | dst[i + 1]);
	sum += len + 58;
	for (i = 0; i + 1 < len; i += 2)
		sum += msg[i] << 8 | msg[i + 1];
	if (len & 1)
		sum += msg[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* ARP reply (op 2) or ICMPv6 type 136 (NA); nothing else is queued. */
static struct sock_filter answers[] = {
	{ 0x28, 0, 0, 12 },		/* 0 ldh [12] ethertype */
	{ 0x15, 0, 2, ETHERTYPE_ARP },	/* 1 ARP? else 4 */
	{ 0x28, 0, 0, 20 },		/* 2 ldh [20] op */
	{ 0x15, 5, 6, 2 },		/* 3 reply: accept at 9, else drop at 10 */
	{ 0x15, 0, 5, ETHERTYPE_IPV6 },	/* 4 IPv6? else drop */
	{ 0x30, 0, 0, 20 },		/* 5 ldb [20] next header */
	{ 0x15, 0, 3, 58 },		/* 6 ICMPv6? else drop */
	{ 0x30, 0, 0, 54 },		/* 7 ldb [54] type */
	{ 0x15, 0, 1, 136 },		/* 8 NA: accept, else drop */
	{ 0x06, 0, 0, 0x40000 },	/* 9 accept */
	{ 0x06, 0, 0, 0 },		/* 10 drop */
};
int main(int argc, char **argv)
{
	if (argc != 11) {
		fprintf(stderr, "usage: flood IFNAME arp|ns TARGET SOURCE RATE COUNT MAX_S "
				"SETTLE_MS FIXED_SRC OUT\n");
		return 2;
	}
	const char *ifname = argv[1];
	int ns = strcmp(argv[2], "ns") == 0;
	double rate = atof(argv[5]);
	long count = atol(argv[6]);
	double max_s = atof(argv[7]);
	int64_t settle = (int64_t)(atof(argv[8]) * 1e6);
	int fixed_src = atoi(argv[9]);
	unsigned char target[16], source[16], own[6];

	if (inet_pton(ns ? AF_INET6 : AF_INET, argv[3], target) != 1 ||
	    inet_pton(ns ? AF_INET6 : AF_INET, argv[4], source) != 1 || rate <= 0 ||
	    count <= 0 || count > 100000000 || max_s <= 0) {
		fprintf(stderr, "flood: bad arguments\n");
		return 2;
	}

	/* protocol 0 until the filter is attached: nothing unfiltered queues up */
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0)
		die("socket");
	struct sock_fprog prog = { sizeof(answers) / sizeof(answers[0]), answers };
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		die("SO_ATTACH_FILTER");
	int buf = 8 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		die("SIOCGIFHWADDR");
	memcpy(own, ifr.ifr_hwaddr.sa_data, 6);
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = if_nametoindex(ifname);
	if (!sll.sll_ifindex)
		die("if_nametoindex");
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		die("bind");
	/* the socket is bound to all protocols only now: drop what slipped in */
	{
		char junk[64];
		while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) >= 0)
			;
	}

	/* the request template */
	unsigned char frame[128];
	size_t flen;
	memset(frame, 0, sizeof(frame));
	if (!ns) {
		memset(frame, 0xff, 6);
		frame[12] = 0x08, frame[13] = 0x06;
		unsigned char *a = frame + 14;
		a[0] = 0, a[1] = 1, a[2] = 0x08, a[3] = 0, a[4] = 6, a[5] = 4, a[6] = 0, a[7] = 1;
		memcpy(a + 14, source, 4);
		memcpy(a + 24, target, 4);
		flen = 60; /* the minimum Ethernet frame, padding included */
	} else {
		frame[0] = 0x33, frame[1] = 0x33, frame[2] = 0xff;
		memcpy(frame + 3, target + 13, 3);
		frame[12] = 0x86, frame[13] = 0xdd;
		unsigned char *ip6 = frame + 14;
		ip6[0] = 0x60;
		ip6[4] = 0, ip6[5] = 32; /* payload: NS 24 + SLLAO 8 */
		ip6[6] = 58, ip6[7] = 255;
		memcpy(ip6 + 8, source, 16);
		static const unsigned char snm[13] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff };
		memcpy(ip6 + 24, snm, 13);
		memcpy(ip6 + 37, target + 13, 3);
		unsigned char *icmp = ip6 + 40;
		icmp[0] = 135;
		memcpy(icmp + 8, target, 16);
		icmp[24] = 1, icmp[25] = 1; /* SLLAO, 8 bytes */
		flen = 14 + 40 + 32;
	}

	int64_t *sent_at = calloc(count, sizeof(int64_t));
	int64_t *lat = malloc(count * sizeof(int64_t));
	if (!sent_at || !lat)
		die("malloc");
	for (long i = 0; i < count; i++)
		lat[i] = -1;

	long sent = 0, answered = 0, dup = 0, stray = 0, send_err = 0;
	int64_t max_lag = 0;
	double period = 1e9 / rate;
	int64_t t0 = now_ns() + 2000000; /* 2 ms from now */
	int64_t stop_send = t0 + (int64_t)(max_s * 1e9);
	int64_t last_send = t0, end = 0;
	unsigned char rx[2048];

	for (;;) {
		int64_t now = now_ns();
		int batch = 0;
		while (sent < count && batch < BATCH) {
			int64_t due = t0 + (int64_t)(sent * period);
			if (due > now || now >= stop_send)
				break;
			unsigned char *mac = !ns ? frame + 14 + 8 : frame + 14 + 40 + 26;
			put_id(mac, (uint32_t)sent);
			memcpy(frame + 6, fixed_src ? own : mac, 6);
			if (ns) {
				unsigned char *ip6 = frame + 14, *icmp = ip6 + 40;
				icmp[2] = icmp[3] = 0;
				uint16_t s = icmp6_sum(ip6 + 8, ip6 + 24, icmp, 32);
				icmp[2] = s >> 8, icmp[3] = s & 0xff;
			}
			int64_t t = now_ns();
			if (send(fd, frame, flen, 0) < 0) {
				send_err++;
				if (errno != ENOBUFS && errno != EAGAIN)
					die("send");
			}
			sent_at[sent] = t;
			if (t - due > max_lag)
				max_lag = t - due;
			last_send = t;
			sent++;
			batch++;
			now = t;
		}
		for (;;) {
			struct sockaddr_ll from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(fd, rx, sizeof(rx), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
			if (n < 0)
				break;
			int64_t t = now_ns();
			uint32_t id;
			int ok = 0;
			if (from.sll_pkttype == PACKET_OUTGOING)
				continue;
			if (!ns && n >= 42 && rx[12] == 0x08 && rx[13] == 0x06 &&
			    memcmp(rx + 14 + 14, target, 4) == 0)
				ok = get_id(rx + 14 + 18, &id);
			else if (ns && n >= 14 + 40 + 24 && rx[12] == 0x86 && rx[13] == 0xdd &&
				 memcmp(rx + 14 + 40 + 8, target, 16) == 0)
				ok = get_id(rx, &id);
			if (!ok || id >= (uint32_t)sent) {
				stray++;
				continue;
			}
			if (lat[id] >= 0) {
				dup++;
				continue;
			}
			lat[id] = t - sent_at[id];
			answered++;
		}
		now = now_ns();
		if (sent == count || now >= stop_send) {
			if (!end)
				end = last_send + settle;
			if (now >= end || answered == sent)
				break;
		}
		int64_t wake = end ? end : t0 + (int64_t)(sent * period);
		if (wake > now) {
			int64_t d = wake - now;
			struct timespec ts = { d / 1000000000LL, d % 1000000000LL };
			struct pollfd p = { fd, POLLIN, 0 };
			ppoll(&p, 1, &ts, NULL);
		}
	}

	struct tpacket_stats st;
	socklen_t sl = sizeof(st);
	memset(&st, 0, sizeof(st));
	getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
	FILE *out = fopen(argv[10], "wb");
	if (!out || fwrite(lat, sizeof(int64_t), count, out) != (size_t)count || fclose(out))
		die(argv[10]);
	printf("{\"sent\": %ld, \"answered\": %ld, \"duplicates\": %ld, \"stray\": %ld, "
	       "\"send_errors\": %ld, \"send_s\": %.6f, \"max_lag_us\": %.1f, "
	       "\"rx_drops\": %u}\n",
	       sent, answered, dup, stray, send_err,
	       sent ? (last_send - t0) / 1e9 : 0.0, max_lag / 1e3, st.tp_drops);
	return 0;
}
