/* wire.h - the wire format: packing, size-checked decoding and validation of
 * rlhf.Envelope (proto/rlhf.proto), a hash for checksums, and names for the
 * schema's enums.
 *
 * Owns: the rules a received message must satisfy before any other code
 * looks at it. Every process decodes with wire_decode() (or wire_unpack()
 * then wire_validate()), so "decoded" means "checked" everywhere: schema
 * version, exactly one body, ids present, enum values known, and array
 * lengths consistent with the dimensions beside them (obs length ==
 * steps*n_envs*obs_dim, ranking length == k, rating in 1..7, ...).
 *
 * On the wire: one ZeroMQ message is one packed Envelope in one frame (after
 * the identity frame a ROUTER adds). The generated types are used as they
 * are (Rlhf__Envelope, Rlhf__Label, ...); include this header, not
 * rlhf.pb-c.h.
 *
 * Errors: functions that can fail take (char *err, size_t errlen) and write
 * one line naming the field, e.g.
 *   "trajectory_batch.obs: length 10, expected steps*n_envs*obs_dim = 12"
 *   "labeled_batch.items[2].label.rating: 9 is outside 1..7"
 * err may be NULL. */
#ifndef RLHF_WIRE_H
#define RLHF_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "rlhf.pb-c.h"

/* The schema version this build speaks (enum Schema in the .proto). */
#define WIRE_SCHEMA_VERSION ((uint32_t)RLHF__SCHEMA__SCHEMA_VERSION)

/* A receive limit for peers that have no better one (max == 0 below). Bulk
 * senders stay under it: trajectory batches by their size, weights by
 * chunking (WIRE_WEIGHTS_CHUNK_FLOATS floats, 16 MiB, per chunk). */
#define WIRE_MAX_MESSAGE_DEFAULT ((size_t)64 << 20)
#define WIRE_WEIGHTS_CHUNK_FLOATS ((size_t)4 << 20)

/* Decoding may allocate at most WIRE_DECODE_FACTOR times the message's
 * size plus WIRE_DECODE_SLACK bytes. protobuf-c allocates a whole struct
 * for every sub-message, so 2 bytes of empty Segment become 216+ bytes of
 * heap: without a budget a 64 MiB message could cost 7 GiB (measured 112x).
 * Real messages need at most about 6x (packed floats 1x, packed bools 4x). */
#define WIRE_DECODE_FACTOR 16
#define WIRE_DECODE_SLACK ((size_t)64 << 10)

/* protobuf-c cannot encode a field (or a message) of 2 GiB or more. */
#define WIRE_MAX_PACKED ((size_t)INT32_MAX)

/* Limits wire_validate() enforces. */
#define WIRE_RATING_MIN 1
#define WIRE_RATING_MAX 7
#define WIRE_MAX_RANK_K 16      /* segments in one ranking query */
#define WIRE_MAX_NAME 128       /* bytes in a peer id, metric name, ... */

/* TrajectoryBatch.ends: one byte per step, how it ended. */
#define WIRE_END_RUNNING 0
#define WIRE_END_TERMINATED 1
#define WIRE_END_TRUNCATED 2

/* Initialises env (rlhf__envelope__init) and fills the header: the schema
 * version, sender, seq and sent_at_us (wall clock now). sender is not copied:
 * it must outlive the envelope. Set the body with, e.g.
 *   env.body_case = RLHF__ENVELOPE__BODY_LABEL; env.label = &label; */
void wire_envelope_init(Rlhf__Envelope *env, const char *sender, uint64_t seq);

/* Validates env (a sender's bug is caught where it happens, naming the field)
 * and packs it into a malloc'd buffer the caller free()s; *len is its size.
 * Returns NULL with err when env is invalid or would pack to more than
 * WIRE_MAX_PACKED bytes. */
uint8_t *wire_pack(const Rlhf__Envelope *env, size_t *len, char *err, size_t errlen);

/* Decodes len bytes into a new envelope, without validating it. A message
 * over max bytes (0: WIRE_MAX_MESSAGE_DEFAULT) is rejected before decoding;
 * the error names the size and the limit. Decoding that would allocate more
 * than the budget above, malformed protobuf, and field numbers protobuf
 * forbids are errors too. Returns NULL with err on any failure. Free the
 * result with wire_free(). */
Rlhf__Envelope *wire_unpack(const void *buf, size_t len, size_t max, char *err, size_t errlen);

/* Checks every rule of the schema (see the file comment). Returns 0, or -1
 * with err naming the first field at fault. Never modifies env. */
int wire_validate(const Rlhf__Envelope *env, char *err, size_t errlen);

/* wire_unpack() then wire_validate(): the one call a receiver makes. Returns
 * a valid envelope or NULL with err. */
Rlhf__Envelope *wire_decode(const void *buf, size_t len, size_t max, char *err, size_t errlen);

/* Frees an envelope from wire_unpack()/wire_decode() and sets *env_p to NULL.
 * Safe on NULL. */
void wire_free(Rlhf__Envelope **env_p);

/* 64-bit FNV-1a of n bytes: JobConfig.hash (over the INI text) and
 * Weights.checksum (over the whole tensor's float32 bytes). Detects
 * corruption and mismatched configs; it is not a cryptographic hash (CURVE
 * protects against tampering). */
uint64_t wire_hash64(const void *data, size_t n);

/* The body's field name in the schema ("trajectory_batch"), or NULL for
 * RLHF__ENVELOPE__BODY__NOT_SET and unknown cases. */
const char *wire_body_name(Rlhf__Envelope__BodyCase body);

/* Enum <-> name. Names are the value names of the schema in lower case
 * without their prefix: PEER_ROLLOUT is "rollout", PREF_CANT_TELL is
 * "cant_tell". _name() returns NULL for *_UNSPECIFIED and for values not in
 * the schema; _parse() returns 0, or -1 with err listing the valid names. */
const char *wire_peer_kind_name(Rlhf__PeerKind v);
int wire_peer_kind_parse(const char *name, Rlhf__PeerKind *out, char *err, size_t errlen);
const char *wire_query_kind_name(Rlhf__QueryKind v);
int wire_query_kind_parse(const char *name, Rlhf__QueryKind *out, char *err, size_t errlen);
const char *wire_preference_name(Rlhf__Preference v);
int wire_preference_parse(const char *name, Rlhf__Preference *out, char *err, size_t errlen);
const char *wire_model_kind_name(Rlhf__ModelKind v);
int wire_model_kind_parse(const char *name, Rlhf__ModelKind *out, char *err, size_t errlen);
const char *wire_ack_status_name(Rlhf__AckStatus v);
int wire_ack_status_parse(const char *name, Rlhf__AckStatus *out, char *err, size_t errlen);
const char *wire_error_code_name(Rlhf__ErrorCode v);
int wire_error_code_parse(const char *name, Rlhf__ErrorCode *out, char *err, size_t errlen);

#endif
