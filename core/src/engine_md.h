/* Internal: what layers above the engine (kv.c) may ask of an engine
 * beyond its public API (engine.h). */
#ifndef MC_ENGINE_MD_H
#define MC_ENGINE_MD_H

#include "metadata.h"
#include "mooncake/engine.h"

/* The engine's metadata front end (owned by the engine). */
mc_metadata *mc_engine_metadata(mc_engine *e);
/* The metadata URL the engine was configured with ("p2p" by default). */
const char *mc_engine_metadata_url(mc_engine *e);

#endif
