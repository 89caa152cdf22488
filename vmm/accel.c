/*
 * accel.c - choosing the accelerator (see accel.h).
 */
#include "accel.h"

#include <stdio.h>
#include <string.h>

int accel_open(struct accel *accel, enum accel_choice choice, char *err, size_t errlen)
{
	memset(accel, 0, sizeof(*accel));
	if (choice == ACCEL_TCG)
		return tcg_accel_open(accel, err, errlen);
	char why[sizeof(accel->kvm_unusable)];
	if (kvm_accel_open(accel, why, sizeof(why)) == 0)
		return 0;
	if (choice == ACCEL_KVM) {
		snprintf(err, errlen, "--accel kvm: %s", why);
		return -1;
	}
	if (tcg_accel_open(accel, err, errlen))
		return -1;
	snprintf(accel->kvm_unusable, sizeof(accel->kvm_unusable), "%s", why);
	return 0;
}

void accel_close(struct accel *accel)
{
	if (accel->ops)
		accel->ops->close(accel);
	accel->ops = NULL;
	accel->priv = NULL;
}

const char *accel_name(const struct accel *accel)
{
	return accel->ops ? accel->ops->name : "none";
}

static const char *const choice_names[] = {"auto", "kvm", "tcg"};

const char *accel_choice_name(enum accel_choice choice)
{
	return (unsigned)choice < 3 ? choice_names[choice] : "?";
}

int accel_choice_parse(const char *text, enum accel_choice *out)
{
	for (unsigned i = 0; i < 3; i++) {
		if (strcmp(text, choice_names[i]) == 0) {
			*out = (enum accel_choice)i;
			return 0;
		}
	}
	return -1;
}
