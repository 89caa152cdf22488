/*
 * lock_order.h - the one lock-order table of the VMM, every lock of vmm/,
 * ksm/, mm/ and io/. It lives in mm/ because most of the locks and the pause
 * protocol are mm's; the locks of vmm/ and ksm/ are the outermost and the
 * leaves, those of io/ the innermost. Nothing includes it: it is the
 * reference that the local "Lock order:" notes point to. A change to the
 * order changes this table first. ThreadSanitizer's deadlock detector checks
 * the order the e2e suites actually take (scripts/test.sh).
 *
 * Lock ordering (outermost first; a lock may be taken while holding any lock
 * above it on its own branch, never the reverse). "[VM paused]" is the pause
 * of vmm/vcpu.c (guest_memory_pause -> vcpu_pause): not a mutex, but it is
 * waited for, so it has a place in the order.
 *
 *   fault_thread.lock                  (fault thread: held over the whole fault)
 *     guest_registry.lock              (reclaim pass, OOM kill, failed-write kill)
 *       guest_memory.harvest_lock
 *         guest_memory.lock            (write-protect log only)
 *       [VM paused]                    (one or more VMs at once; rule 2)
 *         guest_memory.lock            (one VM at a time, never two)
 *           frame_pool.shared_lock
 *             slab_cache.lock          (rmap caches)
 *             buddy locks (below)
 *           reclaim.io_list_lock
 *           reclaim.lock
 *             swap_device.lock
 *           swap_device.lock | swap_device.cache_lock   (never held together)
 *             zswap.lock               (the on-free hook: a freed slot's entry)
 *           zswap.lock
 *           buddy.pcp_list_lock -> buddy_pcp.lock -> buddy.lock
 *           vm.stop_lock, then vcpu.lock (ops->fatal; not nested in each other)
 *   ksm.lock                           (scanner: held over a whole batch; never
 *                                       nested with the two locks above)
 *     guest_memory.harvest_lock, [VM paused], guest_memory.lock and below:
 *                                      as under the registry lock; slab_cache.lock
 *                                      (ksm tables) and shared_lock directly
 *     ksm.snapshot_lock
 *     frame_pool.zero_run_lock -> buddy locks (the zero run's set-up)
 *   slab registry_lock -> slab_cache.lock
 *   Leaves: vm.mem_lock, console output_lock, map_count flock (a file lock),
 *           psi_lock (taken under any of the above, e.g. guest_memory.lock by
 *           a fault's swap-in stall; takes nothing)
 *   Skipping levels is allowed (e.g. registry lock -> reclaim.lock in reclaim_oom,
 *   fault_thread.lock -> vcpu.lock in ops->fault_begin/may_wake/throttle).
 *
 * Locks:
 *   fault_thread.lock      mm/fault_thread.h    slots[], deferred[], counters
 *   ksm.lock               ksm/ksm.c            VM list, stable/unstable tables, pending,
 *                                               counters; ksm.cond waits with it
 *   ksm.snapshot_lock      ksm/ksm.c            the published ksm_stats
 *   guest_registry.lock    mm/guest_registry.h  vms[] (and so every VM's lifetime during
 *                                               a pass), reclaim.next_vm
 *   frame_pool.zero_run_lock mm/frame_pool.h    zero_run (set up once)
 *   guest_memory.harvest_lock mm/guest_memory_internal.h  one harvest at a time:
 *                                               latest_dirty, last_harvest_ms
 *   guest_memory.lock      mm/guest_memory_internal.h  sEPT, host mapping, uffd
 *                                               registration, wp_* bitmaps, stats, cursors
 *   frame_pool.shared_lock mm/frame_pool.h      rmap_shared (mappers, count, pins, refs)
 *                                               and FRAME_SHARED state; stable node->shared
 *   reclaim.lock           mm/reclaim_internal.h  stats, age threshold, oom_victim,
 *                                               wake_pending, stop, write-failure state;
 *                                               reclaim.wake waits with it
 *   reclaim.io_list_lock   mm/reclaim_internal.h  ios[] (every thread's ring)
 *   buddy.pcp_list_lock    mm/buddy.h           pcp_list
 *   buddy_pcp.lock         mm/buddy.c           one thread's cache (list, count)
 *   buddy.lock             mm/buddy.h           free lists, nr_free, wmark, counters
 *   slab registry_lock     mm/slab.c            the list of caches
 *   slab_cache.lock        mm/slab.c            one cache's slabs and counters
 *   swap_device.lock       io/swap_device.c     slot map, clusters, streams
 *   swap_device.cache_lock io/swap_device.c     the swap cache hash
 *   zswap.lock             io/zswap.c           the zswap table and stats
 *   vm.stop_lock           vmm/vm.h             stop_status, stop_message
 *   vm.mem_lock            vmm/vm.h             vm->mem against its release
 *   vcpu.lock              vmm/vcpu.h           pause/park state; vcpu.cond waits with it
 *   output_lock            vmm/console.c        stdout lines and the status line
 *   psi_lock               mm/psi.c             every psi_group's counts, totals, averages
 *                                               and every psi_member (memory.pressure)
 *
 * Rules:
 *  1. Nothing is held while a vCPU runs guest code: vcpu_enter() drops
 *     vcpu.lock before accel vcpu_run(). Exit handlers (port I/O,
 *     hypercalls) run inside vcpu_run() (kvm.c kvm_vcpu_run, tcg.c hook_out)
 *     between vcpu_park_begin() and vcpu_park_end() (vm_exit.c vm_port_io):
 *     they count as parked, so a pause does not wait for them, and the guest
 *     does not go on until the pause ends. So do the #PFs of the owned page
 *     table, served on the vCPU thread inside the emulator's hook
 *     (vm.c memory_cpu_fault -> guest_memory_cpu_fault), which take every
 *     lock a fault-thread fault takes but fault_thread.lock.
 *  2. A pause may be waited for only while holding fault_thread.lock, ksm.lock
 *     or guest_registry.lock, never guest_memory.lock, harvest_lock,
 *     shared_lock or anything below (guest_swap.c: guest_memory_evict drops
 *     guest_memory.lock before pausing; evict_shared pauses every sharer
 *     first, then takes each VM's lock in turn). So a vCPU thread that is not
 *     parked must never wait for those three locks: an exit handler that
 *     reads a swapped-out hypercall buffer reclaims (pool_access ->
 *     reclaim_pass -> the registry lock), which is why handlers count as parked
 *     (rule 1); it was a deadlock with kswapd pausing that VM.
 *  3. Two locks of one class are never held together: guest_memory.lock,
 *     harvest_lock, buddy_pcp.lock, slab_cache.lock and vcpu.lock are taken one
 *     instance at a time (evict_shared, kill_owners, buddy_drain_pcp,
 *     slab_caches_info loop). Several VMs may be paused at once
 *     (evict_shared, in reverse-map order): safe only because pauses are
 *     shared (vcpu.pause_depth counts them) and only wait for the vCPU.
 *  4. reclaim.lock never encloses the registry lock or guest_memory.lock
 *     (swap_slots_process_failures drops it before kill_owners; reclaim_pass
 *     takes it outside the registry lock); reclaim_oom takes the registry
 *     lock first.
 *  5. guest_memory_ops callbacks take only vm.stop_lock and vcpu.lock, so
 *     fatal/fault_begin/may_wake/throttle may be called under any mm lock;
 *     tlb_flush takes none (an atomic flag the accelerator reads);
 *     pause/resume only as in rule 2; dirty_log (an ioctl) under harvest_lock.
 *  6. Blocking while held: fault_thread.lock - everything below (pauses via
 *     direct reclaim, io_uring waits, usleep, pread, mmap). ksm.lock and
 *     the registry lock - pauses, dirty-log ioctl, io_uring waits (registry),
 *     mmap; ksm.lock - fallocate (the merged pages' old frames, freed after
 *     the pause). guest_memory.lock - io_uring waits and usleep (swap-in,
 *     eviction), pread (memory image), mmap(MAP_POPULATE), fallocate; never
 *     a pause. shared_lock - fallocate (frame_pool_free). output_lock - a
 *     stdout write (inside an exit handler: parked, rule 1). Never blocking: buddy, slab,
 * swap_device, zswap, reclaim.lock (but kswapd's timed cond wait), vcpu.lock (but its cond waits),
 * stop_lock, mem_lock, snapshot_lock, io_list_lock (ring setup), psi_lock.
 *  7. Known weak spots (order-correct, but costly): fault_thread.lock is held
 *     across a whole fault, direct reclaim, the OOM kill and swap I/O
 *     included, so one VM's slow swap-in stalls every VM's faults; and
 *     guest_memory.lock is held across swap I/O waits of that VM.
 *
 * Where the order is established:
 *   fault_thread.lock -> *          fault_thread.c fault_thread_main, retry_deferred
 *   registry -> pause -> mem        reclaim.c reclaim_pass/reclaim_vm, guest_swap.c
 *                                   guest_memory_evict, evict_shared
 *   registry -> harvest -> mem      reclaim.c reclaim_vm, access_log.c harvest_write_protect,
 *                                   harvest_accessed_bits
 *   registry -> reclaim.lock        oom.c reclaim_oom
 *   zero_run_lock -> buddy          frame_pool.c frame_pool_zero_run
 *   ksm.lock -> pause -> mem        ksm.c apply_chunk, promote_pending, ksm_set_run (unmerge,
 *                                   on the fleet's thread: vmm/control.c); guest_share.c
 *   mem -> shared_lock              guest_share.c merge_run, guest_memory_share,
 *                                   guest_release_shared; guest_memory.c
 *                                   guest_memory_get_stats
 *   mem -> reclaim.lock, io, swap   guest_swap.c evict_victims, guest_swap_in
 *   shared_lock -> buddy            frame_pool.c frame_pool_put_shared
 *   reclaim.lock -> swap_device     swap_slots.c swap_slots_write_done
 *   swap_device.lock -> zswap.lock  swap_device.c put_slot (swap_device_on_free)
 *   pcp_list -> pcp -> buddy        buddy.c buddy_drain_pcp, pcp_destructor
 */
#ifndef MM_LOCK_ORDER_H
#define MM_LOCK_ORDER_H
#endif
