/*
 * guest_registry.c - the VMs of a fleet, by id (guest_registry.h).
 */
#include "guest_registry.h"

#include <string.h>

void guest_registry_init(struct guest_registry *reg)
{
	memset(reg, 0, sizeof(*reg));
	pthread_mutex_init(&reg->lock, NULL);
}

void guest_registry_destroy(struct guest_registry *reg)
{
	pthread_mutex_destroy(&reg->lock);
}

int guest_registry_add(struct guest_registry *reg, struct guest_memory *mem)
{
	int id = -1;
	pthread_mutex_lock(&reg->lock);
	for (int i = 1; i < GUEST_REGISTRY_MAX; i++) {
		if (!reg->vms[i]) {
			reg->vms[i] = mem;
			id = i;
			break;
		}
	}
	pthread_mutex_unlock(&reg->lock);
	return id;
}

void guest_registry_remove(struct guest_registry *reg, int id)
{
	pthread_mutex_lock(&reg->lock);
	if (id > 0 && id < GUEST_REGISTRY_MAX)
		reg->vms[id] = NULL;
	pthread_mutex_unlock(&reg->lock);
}

void guest_registry_lock(struct guest_registry *reg)
{
	pthread_mutex_lock(&reg->lock);
}

void guest_registry_unlock(struct guest_registry *reg)
{
	pthread_mutex_unlock(&reg->lock);
}

struct guest_memory *guest_registry_get(const struct guest_registry *reg, unsigned id)
{
	return id > 0 && id < GUEST_REGISTRY_MAX ? reg->vms[id] : NULL;
}

struct guest_memory *guest_registry_next(const struct guest_registry *reg,
					 struct guest_registry_iter *it)
{
	while (it->k < GUEST_REGISTRY_MAX - 1) {
		it->k++;
		unsigned id = 1 + (it->start + it->k - 1) % (GUEST_REGISTRY_MAX - 1);
		if (reg->vms[id])
			return reg->vms[id];
	}
	return NULL;
}
