/* swap_slots.h - see reclaim_internal.h. */
#include "reclaim_internal.h"
