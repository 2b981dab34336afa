/* mds_store: see mds_store.h.  Expired keys are dropped lazily when
 * touched and by every listing. */
#include "mds_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mooncake/errors.h"

typedef struct entry {
  struct entry *next;
  char *key;
  void *val;
  size_t len;
  uint64_t expires_ms; /* 0: never */
  int64_t rev;         /* store revision of the last write */
} entry;

struct mds_store {
  pthread_mutex_t mu;
  entry **buckets;
  size_t nbuckets, count;
  size_t bytes;     /* key and value bytes of the entries held */
  size_t max_bytes; /* 0: unbounded */
  int64_t revision; /* bumped by every write (put, delete) */
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t hash(const char *k) { /* FNV-1a */
  uint64_t h = 1469598103934665603ull;
  for (; *k; k++)
    h = (h ^ (unsigned char)*k) * 1099511628211ull;
  return h;
}

mds_store *mds_store_create(void) {
  mds_store *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  s->nbuckets = 1024;
  if (!(s->buckets = calloc(s->nbuckets, sizeof(*s->buckets)))) {
    free(s);
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  return s;
}

static int expired(const entry *e, uint64_t now) {
  return e->expires_ms && e->expires_ms <= now;
}

static void free_entry(entry *e) {
  free(e->key);
  free(e->val);
  free(e);
}

static size_t entry_bytes(const entry *e) { return strlen(e->key) + e->len; }

/* Unlinks and frees *pp, which then holds the next entry.  Called with mu
 * held. */
static void drop(mds_store *s, entry **pp) {
  entry *e = *pp;
  *pp = e->next;
  s->bytes -= entry_bytes(e);
  s->count--;
  free_entry(e);
}

/* Drops every expired entry.  Called with mu held. */
static void purge_expired(mds_store *s, uint64_t now) {
  for (size_t i = 0; i < s->nbuckets; i++) {
    entry **pp = &s->buckets[i];
    while (*pp)
      if (expired(*pp, now))
        drop(s, pp);
      else
        pp = &(*pp)->next;
  }
}

void mds_store_set_max_bytes(mds_store *s, size_t max_bytes) {
  pthread_mutex_lock(&s->mu);
  s->max_bytes = max_bytes;
  pthread_mutex_unlock(&s->mu);
}

size_t mds_store_bytes(mds_store *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->bytes;
  pthread_mutex_unlock(&s->mu);
  return n;
}

void mds_store_destroy(mds_store *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->nbuckets; i++)
    for (entry *e = s->buckets[i], *n; e; e = n) {
      n = e->next;
      free_entry(e);
    }
  free(s->buckets);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Finds key's slot, dropping it if expired.  Called with mu held. */
static entry **find(mds_store *s, const char *key) {
  entry **pp = &s->buckets[hash(key) & (s->nbuckets - 1)];
  for (; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->key, key) == 0) {
      if (expired(*pp, now_ms())) {
        drop(s, pp);
        return pp; /* *pp is now the next entry or NULL: not a match */
      }
      return pp;
    }
  }
  return pp;
}

static void grow(mds_store *s) {
  size_t nb = s->nbuckets * 2;
  entry **b = calloc(nb, sizeof(*b));
  if (!b)
    return; /* keep the old table: slower, still correct */
  for (size_t i = 0; i < s->nbuckets; i++)
    for (entry *e = s->buckets[i], *n; e; e = n) {
      n = e->next;
      size_t j = hash(e->key) & (nb - 1);
      e->next = b[j];
      b[j] = e;
    }
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = nb;
}

int mds_store_put(mds_store *s, const char *key, const void *val, size_t len,
                  int ttl_s) {
  return mds_store_put_if(s, key, -1, val, len, ttl_s, NULL);
}

int mds_store_put_if(mds_store *s, const char *key, int64_t expect_rev,
                     const void *val, size_t len, int ttl_s, int64_t *new_rev) {
  void *copy = malloc(len ? len : 1);
  if (!copy)
    return MC_ENOMEM;
  if (len)
    memcpy(copy, val, len);
  pthread_mutex_lock(&s->mu);
  entry **pp = find(s, key);
  entry *e = *pp && strcmp((*pp)->key, key) == 0 ? *pp : NULL;
  if (expect_rev >= 0 && (e ? e->rev : 0) != expect_rev) {
    pthread_mutex_unlock(&s->mu);
    free(copy);
    return MC_EAGAIN;
  }
  /* Replacing a key counts only the change in its value's size. */
  size_t klen = strlen(key), old = e ? klen + e->len : 0, want = klen + len;
  if (s->max_bytes && want > old && s->bytes - old + want > s->max_bytes) {
    /* Full: expired keys still count until dropped, so drop them all and
     * look again (e itself may have expired meanwhile). */
    purge_expired(s, now_ms());
    pp = find(s, key);
    e = *pp && strcmp((*pp)->key, key) == 0 ? *pp : NULL;
    old = e ? klen + e->len : 0;
    if (expect_rev > 0 && !e) {
      pthread_mutex_unlock(&s->mu);
      free(copy);
      return MC_EAGAIN;
    }
    if (want > old && s->bytes - old + want > s->max_bytes) {
      pthread_mutex_unlock(&s->mu);
      free(copy);
      return MC_ENOSPC;
    }
  }
  if (!e) {
    e = calloc(1, sizeof(*e));
    if (!e || !(e->key = strdup(key))) {
      free(e);
      free(copy);
      pthread_mutex_unlock(&s->mu);
      return MC_ENOMEM;
    }
    size_t i = hash(key) & (s->nbuckets - 1);
    e->next = s->buckets[i];
    s->buckets[i] = e;
    if (++s->count > s->nbuckets * 2)
      grow(s);
  }
  free(e->val);
  e->val = copy;
  s->bytes = s->bytes - old + want;
  e->len = len;
  e->expires_ms = ttl_s > 0 ? now_ms() + (uint64_t)ttl_s * 1000 : 0;
  e->rev = ++s->revision;
  if (new_rev)
    *new_rev = e->rev;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

int mds_store_touch(mds_store *s, const char *key, int ttl_s) {
  pthread_mutex_lock(&s->mu);
  entry **pp = find(s, key);
  int rc = MC_ENOENT;
  if (*pp && strcmp((*pp)->key, key) == 0) {
    (*pp)->expires_ms = ttl_s > 0 ? now_ms() + (uint64_t)ttl_s * 1000 : 0;
    rc = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int mds_store_get(mds_store *s, const char *key, void **val, size_t *len) {
  return mds_store_get_rev(s, key, val, len, NULL);
}

int mds_store_get_rev(mds_store *s, const char *key, void **val, size_t *len,
                      int64_t *rev) {
  pthread_mutex_lock(&s->mu);
  entry **pp = find(s, key);
  int rc = MC_ENOENT;
  if (*pp && strcmp((*pp)->key, key) == 0) {
    entry *e = *pp;
    void *p = malloc(e->len ? e->len : 1);
    if (!p) {
      rc = MC_ENOMEM;
    } else {
      if (e->len)
        memcpy(p, e->val, e->len);
      *val = p;
      *len = e->len;
      if (rev)
        *rev = e->rev;
      rc = 0;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int mds_store_delete(mds_store *s, const char *key) {
  pthread_mutex_lock(&s->mu);
  entry **pp = find(s, key);
  int rc = MC_ENOENT;
  if (*pp && strcmp((*pp)->key, key) == 0) {
    drop(s, pp);
    s->revision++;
    rc = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp((*(entry *const *)a)->key, (*(entry *const *)b)->key);
}

int mds_store_list_json(mds_store *s, const char *prefix, char **json, size_t *len) {
  size_t plen = strlen(prefix), n = 0;
  uint64_t now = now_ms();
  pthread_mutex_lock(&s->mu);
  entry **keys = calloc(s->count + 1, sizeof(*keys));
  if (!keys) {
    pthread_mutex_unlock(&s->mu);
    return MC_ENOMEM;
  }
  for (size_t i = 0; i < s->nbuckets; i++) {
    entry **pp = &s->buckets[i];
    while (*pp) {
      entry *e = *pp;
      if (expired(e, now)) {
        drop(s, pp);
        continue;
      }
      if (strncmp(e->key, prefix, plen) == 0)
        keys[n++] = e;
      pp = &e->next;
    }
  }
  qsort(keys, n, sizeof(*keys), cmp_entry);
  json_t *arr = json_array(), *revs = json_array(), *root = json_object();
  int rc = arr && revs && root ? 0 : MC_ENOMEM;
  for (size_t i = 0; i < n && rc == 0; i++)
    if (json_array_append_new(arr, json_string(keys[i]->key)) != 0 ||
        json_array_append_new(revs, json_integer(keys[i]->rev)) != 0)
      rc = MC_ENOMEM;
  pthread_mutex_unlock(&s->mu);
  free(keys);
  if (rc == 0 && (json_object_set(root, "keys", arr) != 0 ||
                  json_object_set(root, "revs", revs) != 0))
    rc = MC_ENOMEM;
  char *out = rc == 0 ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(arr);
  json_decref(revs);
  json_decref(root);
  if (!out)
    return MC_ENOMEM;
  *json = out;
  *len = strlen(out);
  return 0;
}

size_t mds_store_count(mds_store *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->count;
  pthread_mutex_unlock(&s->mu);
  return n;
}
