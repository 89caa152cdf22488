/*
 * timer.c - time for the guest: a TSC calibrated against the PIT, and sleeps
 * that really idle the vCPU.
 *
 * Calibration: PIT channel 2 (gated by bit 0 of port 0x61; the speaker stays
 * off) counts down the 1.193182 MHz PIT clock. We latch and read its counter
 * with the TSC read right before and after the latch command, once at the
 * start and then until CALIBRATE_COUNT PIT ticks (10 ms) have passed: the
 * TSC ticks between the two latches over the PIT ticks between them give
 * tsc_khz, with an error of the latch bracket (a few us in QEMU), not of a
 * polling loop. If the counter does not move (bounded by a loop count, since
 * the TSC rate is what we do not know yet), tsc_khz stays 0 and the clock
 * assumes 1 GHz.
 *
 * The clock is the TSC since the shim's entry, scaled to nanoseconds.
 *
 * Sleeping: the 8259 PICs are remapped to vectors 32..47 and all masked;
 * interrupts stay off (the guest runs with IF=0). A sleep unmasks IRQ 0 and
 * loops: program PIT channel 0 as a one-shot (mode 0) for the time left
 * (at most 65535 PIT ticks, 55 ms), then `sti; hlt; cli`: the CPU idles
 * until an interrupt, and QEMU's vCPU thread blocks meanwhile. `sti` delays
 * interrupts by one instruction, so an interrupt already pending wakes the
 * `hlt` rather than being taken before it. The loop ends when the TSC passes
 * the deadline; IRQ 0 is masked again. A one-shot that expires stops the
 * PIT's timer in QEMU, so an idle or running guest gets no timer ticks.
 */
#include "shim.h"

#define PIT_HZ 1193182ull
#define PIT_CH0 0x40
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PORT_61 0x61
#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xa0
#define PIC2_DATA 0xa1
#define PIC_EOI 0x20
#define CALIBRATE_COUNT 11932 /* 10 ms of PIT ticks */
#define CALIBRATE_MAX_POLLS (1u << 24)
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

uint64_t tsc_khz;
static uint64_t rate_khz = 1000000; /* tsc_khz, or 1 GHz if uncalibrated */
static uint64_t tsc_boot;

static uint64_t ticks_to_ns(uint64_t t)
{
	return t / rate_khz * NS_PER_MS + t % rate_khz * NS_PER_MS / rate_khz;
}

static uint64_t ns_to_ticks(uint64_t ns)
{
	return ns / NS_PER_MS * rate_khz + ns % NS_PER_MS * rate_khz / NS_PER_MS;
}

static void pic_init(void)
{
	outb(PIC1_CMD, 0x11); /* ICW1: initialise, ICW4 follows */
	outb(PIC2_CMD, 0x11);
	outb(PIC1_DATA, SHIM_IRQ_BASE); /* ICW2: vector bases */
	outb(PIC2_DATA, SHIM_IRQ_BASE + 8);
	outb(PIC1_DATA, 0x04); /* ICW3: slave on IRQ 2 */
	outb(PIC2_DATA, 0x02);
	outb(PIC1_DATA, 0x01); /* ICW4: 8086 mode */
	outb(PIC2_DATA, 0x01);
	outb(PIC1_DATA, 0xff); /* mask everything */
	outb(PIC2_DATA, 0xff);
}

/* Channel 0, mode 0: one interrupt `count` PIT ticks from now. */
static void pit_oneshot(uint16_t count)
{
	outb(PIT_CMD, 0x30); /* channel 0, low then high byte, mode 0, binary */
	outb(PIT_CH0, count & 0xff);
	outb(PIT_CH0, count >> 8);
}

/* Latches and reads PIT channel 2's counter; the TSC at the latch is the
 * middle of the two reads around it. */
static uint16_t pit2_sample(uint64_t *tsc)
{
	uint64_t before = rdtsc();
	outb(PIT_CMD, 0x80); /* latch channel 2 */
	uint64_t after = rdtsc();
	uint8_t lo = inb(PIT_CH2), hi = inb(PIT_CH2);
	*tsc = before + (after - before) / 2;
	return (uint16_t)(lo | hi << 8);
}

static uint64_t calibrate_tsc_khz(void)
{
	uint8_t v = inb(PORT_61);
	outb(PORT_61, (uint8_t)((v & ~0x02) | 0x01)); /* speaker off, gate 2 high */
	outb(PIT_CMD, 0xb0); /* channel 2, low then high byte, mode 0, binary */
	outb(PIT_CH2, 0xff);
	outb(PIT_CH2, 0xff); /* counts down from 0xffff: 55 ms */
	uint64_t t0, t1;
	uint16_t c0 = pit2_sample(&t0), elapsed = 0;
	for (uint32_t polls = 0; elapsed < CALIBRATE_COUNT; polls++) {
		if (polls == CALIBRATE_MAX_POLLS)
			return 0;
		elapsed = (uint16_t)(c0 - pit2_sample(&t1));
	}
	outb(PORT_61, (uint8_t)(v & ~0x03));
	return (t1 - t0) * PIT_HZ / (elapsed * 1000ull);
}

void timer_init(uint64_t tsc_at_entry)
{
	tsc_boot = tsc_at_entry;
	pic_init();
	/* Replace the BIOS's periodic tick with a one-shot that runs out. */
	pit_oneshot(1);
	tsc_khz = calibrate_tsc_khz();
	if (tsc_khz)
		rate_khz = tsc_khz;
}

uint64_t timer_clock_ns(void)
{
	return ticks_to_ns(rdtsc() - tsc_boot);
}

void timer_sleep_ns(uint64_t ns)
{
	uint64_t start = rdtsc(), ticks = ns_to_ticks(ns);
	outb(PIC1_DATA, 0xfe); /* IRQ 0 only */
	for (;;) {
		uint64_t elapsed = rdtsc() - start;
		if (elapsed >= ticks)
			break;
		uint64_t left_ns = ticks_to_ns(ticks - elapsed);
		if (left_ns > 60 * NS_PER_MS)
			left_ns = 60 * NS_PER_MS;
		uint64_t count = left_ns * PIT_HZ / NS_PER_S + 1;
		pit_oneshot((uint16_t)(count > 0xffff ? 0xffff : count < 2 ? 2 : count));
		__asm__ volatile("sti; hlt; cli" : : : "memory");
	}
	outb(PIC1_DATA, 0xff);
}

/* Interrupt from PIC line `irq`. Lines 7 and 15 also carry the PICs'
 * spurious interrupts, which must not be acknowledged. */
void timer_irq(unsigned irq)
{
	if (irq == 7 || irq == 15) {
		uint16_t cmd = irq == 7 ? PIC1_CMD : PIC2_CMD;
		outb(cmd, 0x0b); /* read the in-service register */
		if (!(inb(cmd) & 0x80)) {
			if (irq == 15)
				outb(PIC1_CMD, PIC_EOI); /* the master did see IRQ 2 */
			return;
		}
	}
	if (irq >= 8)
		outb(PIC2_CMD, PIC_EOI);
	outb(PIC1_CMD, PIC_EOI);
}
