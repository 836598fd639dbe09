"""cffi build script for ``jackgen.plugins._lv2``: LV2 hosting through Debian's liblilv-0.

Why a hand-written binding: Debian 12 ships no python3-lilv and PyPI has no lilv. This is the
part of lilv's API jackgen calls (world, plugin and port metadata, instances, state) plus a small
C host shim for what an LV2 host must give a plugin as C function pointers, which must not call
back into Python on the plugin's audio thread:

- ``urid:map`` / ``urid:unmap``: one process-wide table (a mutex: plugins map at instantiation);
- ``options:options`` (sample rate, block lengths, sequence size) and ``buf-size`` features;
- ``worker:schedule``, run synchronously: jackgen runs plugins on a producer thread ahead of the
  playhead, not on JACK's thread, so the work is done at once and its responses are delivered
  after ``run()`` (as jalv does when freewheeling);
- ``log:log`` to stderr;
- the port-value callbacks ``lilv_state_*`` use, and atom-sequence helpers for MIDI in.

Run by setuptools at install time (``cffi_modules`` in setup.py); needs liblilv-dev.
"""

from __future__ import annotations

from cffi import FFI

CDEF = r"""
typedef struct LilvWorldImpl LilvWorld;
typedef struct LilvPluginImpl LilvPlugin;
typedef struct LilvPluginClassImpl LilvPluginClass;
typedef struct LilvPortImpl LilvPort;
typedef struct LilvScalePointImpl LilvScalePoint;
typedef struct LilvNodeImpl LilvNode;
typedef struct LilvInstanceImpl LilvInstance;
typedef struct LilvStateImpl LilvState;
typedef void LilvIter;
typedef void LilvPlugins;
typedef void LilvNodes;
typedef void LilvScalePoints;

LilvWorld* lilv_world_new(void);
void lilv_world_load_all(LilvWorld* world);
void lilv_world_free(LilvWorld* world);
int lilv_world_load_resource(LilvWorld* world, const LilvNode* resource);
const LilvPlugins* lilv_world_get_all_plugins(const LilvWorld* world);
LilvNodes* lilv_world_find_nodes(LilvWorld* world, const LilvNode* subject, const LilvNode* predicate,
                                 const LilvNode* object);

unsigned lilv_plugins_size(const LilvPlugins* collection);
LilvIter* lilv_plugins_begin(const LilvPlugins* collection);
const LilvPlugin* lilv_plugins_get(const LilvPlugins* collection, LilvIter* i);
LilvIter* lilv_plugins_next(const LilvPlugins* collection, LilvIter* i);
bool lilv_plugins_is_end(const LilvPlugins* collection, LilvIter* i);
const LilvPlugin* lilv_plugins_get_by_uri(const LilvPlugins* plugins, const LilvNode* uri);

unsigned lilv_nodes_size(const LilvNodes* collection);
LilvIter* lilv_nodes_begin(const LilvNodes* collection);
const LilvNode* lilv_nodes_get(const LilvNodes* collection, LilvIter* i);
LilvIter* lilv_nodes_next(const LilvNodes* collection, LilvIter* i);
bool lilv_nodes_is_end(const LilvNodes* collection, LilvIter* i);
void lilv_nodes_free(LilvNodes* collection);
LilvNode* lilv_nodes_get_first(const LilvNodes* collection);

LilvNode* lilv_new_uri(LilvWorld* world, const char* uri);
void lilv_node_free(LilvNode* val);
const char* lilv_node_as_uri(const LilvNode* value);
const char* lilv_node_as_string(const LilvNode* value);
bool lilv_node_is_uri(const LilvNode* value);
bool lilv_node_is_float(const LilvNode* value);
bool lilv_node_is_int(const LilvNode* value);
float lilv_node_as_float(const LilvNode* value);
void lilv_free(void* ptr);

const LilvNode* lilv_plugin_get_uri(const LilvPlugin* plugin);
const LilvNode* lilv_plugin_get_bundle_uri(const LilvPlugin* plugin);
LilvNode* lilv_plugin_get_name(const LilvPlugin* plugin);
const LilvPluginClass* lilv_plugin_get_class(const LilvPlugin* plugin);
const LilvNode* lilv_plugin_class_get_uri(const LilvPluginClass* plugin_class);
const LilvNode* lilv_plugin_class_get_label(const LilvPluginClass* plugin_class);
uint32_t lilv_plugin_get_num_ports(const LilvPlugin* plugin);
LilvNodes* lilv_plugin_get_required_features(const LilvPlugin* plugin);
LilvNodes* lilv_plugin_get_related(const LilvPlugin* plugin, const LilvNode* type);
bool lilv_plugin_has_extension_data(const LilvPlugin* plugin, const LilvNode* uri);
const LilvPort* lilv_plugin_get_port_by_index(const LilvPlugin* plugin, uint32_t index);

bool lilv_port_is_a(const LilvPlugin* plugin, const LilvPort* port, const LilvNode* port_class);
bool lilv_port_supports_event(const LilvPlugin* plugin, const LilvPort* port, const LilvNode* event_type);
bool lilv_port_has_property(const LilvPlugin* plugin, const LilvPort* port, const LilvNode* property);
const LilvNode* lilv_port_get_symbol(const LilvPlugin* plugin, const LilvPort* port);
LilvNode* lilv_port_get_name(const LilvPlugin* plugin, const LilvPort* port);
LilvNodes* lilv_port_get_value(const LilvPlugin* plugin, const LilvPort* port, const LilvNode* predicate);
void lilv_port_get_range(const LilvPlugin* plugin, const LilvPort* port, LilvNode** deflt, LilvNode** min,
                         LilvNode** max);
LilvScalePoints* lilv_port_get_scale_points(const LilvPlugin* plugin, const LilvPort* port);
void lilv_scale_points_free(LilvScalePoints* collection);
unsigned lilv_scale_points_size(const LilvScalePoints* collection);
LilvIter* lilv_scale_points_begin(const LilvScalePoints* collection);
const LilvScalePoint* lilv_scale_points_get(const LilvScalePoints* collection, LilvIter* i);
LilvIter* lilv_scale_points_next(const LilvScalePoints* collection, LilvIter* i);
bool lilv_scale_points_is_end(const LilvScalePoints* collection, LilvIter* i);
const LilvNode* lilv_scale_point_get_label(const LilvScalePoint* point);
const LilvNode* lilv_scale_point_get_value(const LilvScalePoint* point);

void lilv_instance_connect_port(LilvInstance* instance, uint32_t port_index, void* data_location);
void lilv_instance_activate(LilvInstance* instance);
void lilv_instance_deactivate(LilvInstance* instance);
void lilv_instance_free(LilvInstance* instance);

typedef struct jg_lv2 jg_lv2;
jg_lv2* jg_lv2_new(LilvWorld* world, const LilvPlugin* plugin, double rate, uint32_t block, uint32_t seq_size,
                   char* err, uint32_t err_len);
void jg_lv2_free(jg_lv2* h);
LilvInstance* jg_lv2_instance(jg_lv2* h);
void jg_lv2_connect(jg_lv2* h, uint32_t port, void* data);
void jg_lv2_set_controls(jg_lv2* h, uint32_t n, const uint32_t* index, const char** symbols, float* values);
void jg_lv2_run(jg_lv2* h, uint32_t n);
uint32_t jg_lv2_map(const char* uri);
const char* jg_lv2_unmap(uint32_t urid);
void jg_lv2_seq_clear(void* buf, uint32_t capacity);
int jg_lv2_seq_add(void* buf, uint32_t capacity, int64_t frame, const uint8_t* data, uint32_t size);
void jg_lv2_seq_prepare_out(void* buf, uint32_t capacity);
char* jg_lv2_state_save(jg_lv2* h);
int jg_lv2_state_restore(jg_lv2* h, const char* ttl);
int jg_lv2_preset_apply(jg_lv2* h, const char* preset_uri);
double jg_lv2_bench(jg_lv2* h, uint32_t blocks, uint32_t n, void** atom_in, uint32_t n_atom_in,
                    uint32_t atom_size, void** atom_out, uint32_t n_atom_out);
"""

SOURCE = r"""
#include <lilv/lilv.h>
#include <lv2/atom/atom.h>
#include <lv2/atom/util.h>
#include <lv2/buf-size/buf-size.h>
#include <lv2/log/log.h>
#include <lv2/midi/midi.h>
#include <lv2/options/options.h>
#include <lv2/parameters/parameters.h>
#include <lv2/state/state.h>
#include <lv2/urid/urid.h>
#include <lv2/worker/worker.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ urid:map, one table a process */
static pthread_mutex_t urid_lock = PTHREAD_MUTEX_INITIALIZER;
static char **urid_uris = NULL;
static uint32_t urid_count = 0, urid_cap = 0;

uint32_t jg_lv2_map(const char *uri) {
    if (!uri) return 0;
    pthread_mutex_lock(&urid_lock);
    for (uint32_t i = 0; i < urid_count; i++) {
        if (strcmp(urid_uris[i], uri) == 0) { pthread_mutex_unlock(&urid_lock); return i + 1; }
    }
    if (urid_count == urid_cap) {
        uint32_t cap = urid_cap ? urid_cap * 2 : 256;
        char **grown = realloc(urid_uris, cap * sizeof(char *));
        if (!grown) { pthread_mutex_unlock(&urid_lock); return 0; }
        urid_uris = grown; urid_cap = cap;
    }
    urid_uris[urid_count] = strdup(uri);
    uint32_t id = ++urid_count;
    pthread_mutex_unlock(&urid_lock);
    return id;
}

const char *jg_lv2_unmap(uint32_t urid) {
    const char *s = NULL;
    pthread_mutex_lock(&urid_lock);
    if (urid >= 1 && urid <= urid_count) s = urid_uris[urid - 1];
    pthread_mutex_unlock(&urid_lock);
    return s;
}

static LV2_URID map_cb(LV2_URID_Map_Handle h, const char *uri) { (void)h; return jg_lv2_map(uri); }
static const char *unmap_cb(LV2_URID_Unmap_Handle h, LV2_URID urid) { (void)h; return jg_lv2_unmap(urid); }
static LV2_URID_Map urid_map = {NULL, map_cb};
static LV2_URID_Unmap urid_unmap = {NULL, unmap_cb};

/* ------------------------------------------------------------------ log:log */
static int log_vprintf(LV2_Log_Handle h, LV2_URID type, const char *fmt, va_list ap) {
    (void)h;
    const char *t = jg_lv2_unmap(type);
    const char *kind = t && strrchr(t, '#') ? strrchr(t, '#') + 1 : "log";
    fprintf(stderr, "lv2 %s: ", kind);
    int n = vfprintf(stderr, fmt, ap);
    return n;
}
static int log_printf(LV2_Log_Handle h, LV2_URID type, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    int n = log_vprintf(h, type, fmt, ap);
    va_end(ap);
    return n;
}

/* ------------------------------------------------------------------ one instance and its host */
typedef struct jg_lv2 jg_lv2;
#define JG_RESP_BYTES 65536
#define JG_MAX_FEATURES 12

struct jg_lv2 {
    LilvWorld *world;
    const LilvPlugin *plugin;
    LilvInstance *instance;
    double rate;
    float rate_f;
    int32_t min_block, max_block, seq_size;
    LV2_Options_Option options[6];
    LV2_Log_Log log;
    LV2_Worker_Schedule sched;
    const LV2_Worker_Interface *worker;
    LV2_Feature f_map, f_unmap, f_options, f_log, f_sched, f_bounded, f_fixed, f_pow2;
    const LV2_Feature *features[JG_MAX_FEATURES];
    /* worker responses, delivered after run() */
    uint8_t resp[JG_RESP_BYTES];
    uint32_t resp_len;
    int in_run;
    /* control ports, for state save/restore */
    uint32_t n_controls;
    const uint32_t *ctl_index;
    const char **ctl_symbols;
    float *ctl_values;
};

static LV2_Worker_Status respond_cb(LV2_Worker_Respond_Handle handle, uint32_t size, const void *data) {
    jg_lv2 *h = (jg_lv2 *)handle;
    if (h->resp_len + sizeof(uint32_t) + size > JG_RESP_BYTES) return LV2_WORKER_ERR_NO_SPACE;
    memcpy(h->resp + h->resp_len, &size, sizeof(uint32_t));
    memcpy(h->resp + h->resp_len + sizeof(uint32_t), data, size);
    h->resp_len += sizeof(uint32_t) + size;
    return LV2_WORKER_SUCCESS;
}

static void deliver_responses(jg_lv2 *h) {
    uint32_t off = 0;
    LV2_Handle inst = lilv_instance_get_handle(h->instance);
    while (off < h->resp_len) {
        uint32_t size;
        memcpy(&size, h->resp + off, sizeof(uint32_t));
        if (h->worker && h->worker->work_response) h->worker->work_response(inst, size, h->resp + off + sizeof(uint32_t));
        off += sizeof(uint32_t) + size;
    }
    h->resp_len = 0;
}

static LV2_Worker_Status schedule_cb(LV2_Worker_Schedule_Handle handle, uint32_t size, const void *data) {
    jg_lv2 *h = (jg_lv2 *)handle;
    if (!h->worker || !h->worker->work) return LV2_WORKER_ERR_UNKNOWN;
    /* synchronous: this thread is not JACK's; the plugin hears back after run() (or now, outside it) */
    LV2_Worker_Status st = h->worker->work(lilv_instance_get_handle(h->instance), respond_cb, h, size, data);
    if (!h->in_run) deliver_responses(h);
    return st;
}

static int supported(const char *uri) {
    static const char *ok[] = {LV2_URID__map, LV2_URID__unmap, LV2_OPTIONS__options, LV2_LOG__log,
                               LV2_WORKER__schedule, LV2_BUF_SIZE__boundedBlockLength,
                               LV2_BUF_SIZE__fixedBlockLength, LV2_BUF_SIZE__powerOf2BlockLength,
                               LV2_STATE__loadDefaultState, LV2_STATE__mapPath, LV2_STATE__makePath,
                               LV2_STATE__freePath, LV2_CORE__isLive, LV2_CORE__inPlaceBroken,
                               "http://lv2plug.in/ns/ext/urid#unmap", NULL};
    for (int i = 0; ok[i]; i++)
        if (strcmp(ok[i], uri) == 0) return 1;
    return 0;
}

jg_lv2 *jg_lv2_new(LilvWorld *world, const LilvPlugin *plugin, double rate, uint32_t block, uint32_t seq_size,
                   char *err, uint32_t err_len) {
    LilvNodes *req = lilv_plugin_get_required_features(plugin);
    LILV_FOREACH(nodes, i, req) {
        const char *uri = lilv_node_as_uri(lilv_nodes_get(req, i));
        if (!supported(uri)) {
            snprintf(err, err_len, "it requires the LV2 feature %s, which jackgen does not provide", uri);
            lilv_nodes_free(req);
            return NULL;
        }
    }
    lilv_nodes_free(req);
    jg_lv2 *h = calloc(1, sizeof(jg_lv2));
    if (!h) { snprintf(err, err_len, "out of memory"); return NULL; }
    h->world = world; h->plugin = plugin; h->rate = rate; h->rate_f = (float)rate;
    h->min_block = 1; h->max_block = (int32_t)block; h->seq_size = (int32_t)seq_size;
    LV2_URID a_int = jg_lv2_map(LV2_ATOM__Int), a_float = jg_lv2_map(LV2_ATOM__Float);
    LV2_Options_Option opts[6] = {
        {LV2_OPTIONS_INSTANCE, 0, jg_lv2_map(LV2_PARAMETERS__sampleRate), sizeof(float), a_float, &h->rate_f},
        {LV2_OPTIONS_INSTANCE, 0, jg_lv2_map(LV2_BUF_SIZE__minBlockLength), sizeof(int32_t), a_int, &h->min_block},
        {LV2_OPTIONS_INSTANCE, 0, jg_lv2_map(LV2_BUF_SIZE__maxBlockLength), sizeof(int32_t), a_int, &h->max_block},
        {LV2_OPTIONS_INSTANCE, 0, jg_lv2_map(LV2_BUF_SIZE__nominalBlockLength), sizeof(int32_t), a_int, &h->max_block},
        {LV2_OPTIONS_INSTANCE, 0, jg_lv2_map(LV2_BUF_SIZE__sequenceSize), sizeof(int32_t), a_int, &h->seq_size},
        {LV2_OPTIONS_INSTANCE, 0, 0, 0, 0, NULL},
    };
    memcpy(h->options, opts, sizeof(opts));
    h->log.handle = h; h->log.printf = log_printf; h->log.vprintf = log_vprintf;
    h->sched.handle = h; h->sched.schedule_work = schedule_cb;
    h->f_map = (LV2_Feature){LV2_URID__map, &urid_map};
    h->f_unmap = (LV2_Feature){LV2_URID__unmap, &urid_unmap};
    h->f_options = (LV2_Feature){LV2_OPTIONS__options, h->options};
    h->f_log = (LV2_Feature){LV2_LOG__log, &h->log};
    h->f_sched = (LV2_Feature){LV2_WORKER__schedule, &h->sched};
    h->f_bounded = (LV2_Feature){LV2_BUF_SIZE__boundedBlockLength, NULL};
    h->f_fixed = (LV2_Feature){LV2_BUF_SIZE__fixedBlockLength, NULL};
    h->f_pow2 = (LV2_Feature){LV2_BUF_SIZE__powerOf2BlockLength, NULL};
    int k = 0;
    h->features[k++] = &h->f_map; h->features[k++] = &h->f_unmap; h->features[k++] = &h->f_options;
    h->features[k++] = &h->f_log; h->features[k++] = &h->f_sched; h->features[k++] = &h->f_bounded;
    h->features[k++] = &h->f_fixed;
    if (block && (block & (block - 1)) == 0) h->features[k++] = &h->f_pow2;
    h->features[k] = NULL;
    h->instance = lilv_plugin_instantiate(plugin, rate, h->features);
    if (!h->instance) {
        snprintf(err, err_len, "its instantiate() failed at %.0f Hz", rate);
        free(h);
        return NULL;
    }
    h->worker = (const LV2_Worker_Interface *)lilv_instance_get_extension_data(h->instance, LV2_WORKER__interface);
    return h;
}

void jg_lv2_free(jg_lv2 *h) {
    if (!h) return;
    if (h->instance) lilv_instance_free(h->instance);
    free(h);
}

LilvInstance *jg_lv2_instance(jg_lv2 *h) { return h->instance; }

void jg_lv2_connect(jg_lv2 *h, uint32_t port, void *data) { lilv_instance_connect_port(h->instance, port, data); }

void jg_lv2_set_controls(jg_lv2 *h, uint32_t n, const uint32_t *index, const char **symbols, float *values) {
    h->n_controls = n; h->ctl_index = index; h->ctl_symbols = symbols; h->ctl_values = values;
}

void jg_lv2_run(jg_lv2 *h, uint32_t n) {
    h->in_run = 1;
    lilv_instance_run(h->instance, n);
    h->in_run = 0;
    if (h->resp_len) deliver_responses(h);
    if (h->worker && h->worker->end_run) h->worker->end_run(lilv_instance_get_handle(h->instance));
}

/* ------------------------------------------------------------------ atom sequences */
void jg_lv2_seq_clear(void *buf, uint32_t capacity) {
    (void)capacity;
    LV2_Atom_Sequence *seq = (LV2_Atom_Sequence *)buf;
    seq->atom.type = jg_lv2_map(LV2_ATOM__Sequence);
    seq->atom.size = sizeof(LV2_Atom_Sequence_Body);
    seq->body.unit = 0; seq->body.pad = 0;
}

int jg_lv2_seq_add(void *buf, uint32_t capacity, int64_t frame, const uint8_t *data, uint32_t size) {
    LV2_Atom_Sequence *seq = (LV2_Atom_Sequence *)buf;
    uint32_t used = sizeof(LV2_Atom) + seq->atom.size;
    uint32_t need = lv2_atom_pad_size(sizeof(LV2_Atom_Event) + size);
    if (used + need > capacity) return -1;
    LV2_Atom_Event *ev = (LV2_Atom_Event *)((uint8_t *)buf + used);
    ev->time.frames = frame;
    ev->body.type = jg_lv2_map(LV2_MIDI__MidiEvent);
    ev->body.size = size;
    memcpy(ev + 1, data, size);
    seq->atom.size += need;
    return 0;
}

void jg_lv2_seq_prepare_out(void *buf, uint32_t capacity) {
    LV2_Atom *a = (LV2_Atom *)buf;
    a->type = jg_lv2_map(LV2_ATOM__Chunk);
    a->size = capacity - sizeof(LV2_Atom);
}

/* ------------------------------------------------------------------ state */
static const void *get_value(const char *symbol, void *user_data, uint32_t *size, uint32_t *type) {
    jg_lv2 *h = (jg_lv2 *)user_data;
    for (uint32_t i = 0; i < h->n_controls; i++) {
        if (strcmp(h->ctl_symbols[i], symbol) == 0) {
            *size = sizeof(float); *type = jg_lv2_map(LV2_ATOM__Float);
            return &h->ctl_values[i];
        }
    }
    *size = 0; *type = 0;
    return NULL;
}

static void set_value(const char *symbol, void *user_data, const void *value, uint32_t size, uint32_t type) {
    jg_lv2 *h = (jg_lv2 *)user_data;
    float v;
    if (type == jg_lv2_map(LV2_ATOM__Float) && size == sizeof(float)) v = *(const float *)value;
    else if (type == jg_lv2_map(LV2_ATOM__Double) && size == sizeof(double)) v = (float)*(const double *)value;
    else if (type == jg_lv2_map(LV2_ATOM__Int) && size == sizeof(int32_t)) v = (float)*(const int32_t *)value;
    else if (type == jg_lv2_map(LV2_ATOM__Bool) && size == sizeof(int32_t)) v = (float)*(const int32_t *)value;
    else return;
    for (uint32_t i = 0; i < h->n_controls; i++) {
        if (strcmp(h->ctl_symbols[i], symbol) == 0) { h->ctl_values[i] = v; return; }
    }
}

char *jg_lv2_state_save(jg_lv2 *h) {
    LilvState *st = lilv_state_new_from_instance(h->plugin, h->instance, &urid_map, NULL, NULL, NULL, NULL,
                                                 get_value, h, LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE,
                                                 h->features);
    if (!st) return NULL;
    char *s = lilv_state_to_string(h->world, &urid_map, &urid_unmap, st, "urn:jackgen:state", NULL);
    lilv_state_free(st);
    return s;
}

static int restore(jg_lv2 *h, LilvState *st) {
    if (!st) return -1;
    lilv_state_restore(st, h->instance, set_value, h, 0, h->features);
    lilv_state_free(st);
    if (h->resp_len) deliver_responses(h);
    return 0;
}

int jg_lv2_state_restore(jg_lv2 *h, const char *ttl) {
    return restore(h, lilv_state_new_from_string(h->world, &urid_map, ttl));
}

/* bench/instruments.py's baseline: ``blocks`` runs of ``n`` frames with nothing between them but
   what any C host does per block (atom buffers reset); returns the seconds they took. */
#include <time.h>
double jg_lv2_bench(jg_lv2 *h, uint32_t blocks, uint32_t n, void **atom_in, uint32_t n_atom_in,
                    uint32_t atom_size, void **atom_out, uint32_t n_atom_out) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (uint32_t i = 0; i < blocks; i++) {
        for (uint32_t k = 0; k < n_atom_in; k++) jg_lv2_seq_clear(atom_in[k], atom_size);
        for (uint32_t k = 0; k < n_atom_out; k++) jg_lv2_seq_prepare_out(atom_out[k], atom_size);
        jg_lv2_run(h, n);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

int jg_lv2_preset_apply(jg_lv2 *h, const char *preset_uri) {
    LilvNode *node = lilv_new_uri(h->world, preset_uri);
    lilv_world_load_resource(h->world, node);
    LilvState *st = lilv_state_new_from_world(h->world, &urid_map, node);
    lilv_node_free(node);
    return restore(h, st);
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("jackgen.plugins._lv2", SOURCE, extra_compile_args=["-O2", "-std=gnu11"],
                      include_dirs=["/usr/include/lilv-0"], libraries=["lilv-0", "pthread"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
