/* test_layers.c - mm/'s layers, checked on the built objects: which object
 * of libvmm_mm.a uses which symbol another one defines (nm), so the check
 * sees what the linker sees, not what the headers promise.
 *
 *   physical       frames, the buddy allocator, slabs, the sEPT, reverse
 *                  maps, the frame pool: nothing about VMs
 *   address space  one VM's guest-physical space and how its CPU sees it
 *   policy         faults, swap, reclaim, the OOM killer, lifetimes
 *
 * An object may use objects of its own layer or below, never above, and no
 * two objects may depend on each other through any chain (no cycle). Every
 * object must be placed in a layer here: a new file has to be thought about.
 * The checker itself is tested on made-up nm output that breaks each rule. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum layer { PHYSICAL, ADDRESS_SPACE, POLICY, UNPLACED };

static const char *const layer_names[] = {"physical", "address space", "policy", "unplaced"};

static const struct {
	const char *object;
	enum layer layer;
} placement[] = {
	{"frame_table", PHYSICAL},
	{"buddy", PHYSICAL},
	{"slab", PHYSICAL},
	{"sept", PHYSICAL},
	{"rmap", PHYSICAL},
	{"frame_pool", PHYSICAL},
	{"page_counter", PHYSICAL},
	{"guest_memory", ADDRESS_SPACE},
	{"guest_populate", ADDRESS_SPACE},
	{"guest_share", ADDRESS_SPACE},
	{"access_log", ADDRESS_SPACE},
	{"memory_image", ADDRESS_SPACE},
	{"host_realiser", ADDRESS_SPACE},
	{"owned_realiser", ADDRESS_SPACE},
	{"guest_registry", ADDRESS_SPACE},
	{"guest_fault", POLICY},
	{"guest_life", POLICY},
	{"guest_swap", POLICY},
	{"reclaim", POLICY},
	{"reclaim_swap", POLICY},
	{"oom", POLICY},
	{"swap_slots", POLICY},
	{"fault_thread", POLICY},
	{"memcg", POLICY},
	{"psi", POLICY},
};

#define MAX_OBJECTS 64
#define MAX_SYMBOLS 4096

struct graph {
	char objects[MAX_OBJECTS][64];
	int n;
	struct {
		char name[96];
		int object;
	} defined[MAX_SYMBOLS];
	int ndefined;
	struct {
		char name[96];
		int object;
	} used[MAX_SYMBOLS];
	int nused;
	unsigned char edge[MAX_OBJECTS][MAX_OBJECTS];
	char why[MAX_OBJECTS][MAX_OBJECTS][96]; /* one symbol behind each edge */
};

static int object_index(struct graph *g, const char *name)
{
	for (int i = 0; i < g->n; i++)
		if (strcmp(g->objects[i], name) == 0)
			return i;
	cr_assert_lt(g->n, MAX_OBJECTS);
	snprintf(g->objects[g->n], sizeof(g->objects[0]), "%s", name);
	return g->n++;
}

/* Reads `nm -A` lines: "archive:object.c.o:<addr> T symbol" or
 * "archive:object.c.o:                 U symbol". */
static void graph_read(struct graph *g, FILE *nm)
{
	memset(g, 0, sizeof(*g));
	char line[512];
	while (fgets(line, sizeof(line), nm)) {
		char *colon = strstr(line, ".o:");
		if (!colon)
			continue;
		char *start = colon;
		while (start > line && start[-1] != ':' && start[-1] != '/')
			start--;
		char object[64];
		snprintf(object, sizeof(object), "%.*s", (int)(colon - start), start);
		char *dot = strstr(object, ".c");
		if (dot)
			*dot = 0;
		char type, symbol[96];
		const char *rest = colon + 3;
		if (sscanf(rest, " %*[0-9a-f] %c %95s", &type, symbol) != 2 &&
		    sscanf(rest, " %c %95s", &type, symbol) != 2)
			continue;
		int o = object_index(g, object);
		if (type == 'U') {
			cr_assert_lt(g->nused, MAX_SYMBOLS);
			snprintf(g->used[g->nused].name, sizeof(g->used[0].name), "%s", symbol);
			g->used[g->nused++].object = o;
		} else if (strchr("TDBRC", type)) {
			cr_assert_lt(g->ndefined, MAX_SYMBOLS);
			snprintf(g->defined[g->ndefined].name, sizeof(g->defined[0].name), "%s",
				 symbol);
			g->defined[g->ndefined++].object = o;
		}
	}
	for (int u = 0; u < g->nused; u++)
		for (int d = 0; d < g->ndefined; d++)
			if (strcmp(g->used[u].name, g->defined[d].name) == 0 &&
			    g->used[u].object != g->defined[d].object) {
				int a = g->used[u].object, b = g->defined[d].object;
				if (!g->edge[a][b])
					snprintf(g->why[a][b], sizeof(g->why[0][0]), "%s",
						 g->used[u].name);
				g->edge[a][b] = 1;
			}
}

static enum layer layer_of(const char *object)
{
	for (size_t i = 0; i < sizeof(placement) / sizeof(placement[0]); i++)
		if (strcmp(placement[i].object, object) == 0)
			return placement[i].layer;
	return UNPLACED;
}

/* The first rule broken, in `problem`; 0 if none. */
static int check_layers(const struct graph *g, char *problem, size_t len)
{
	for (int a = 0; a < g->n; a++) {
		if (layer_of(g->objects[a]) == UNPLACED) {
			snprintf(problem, len, "%s.o is in no layer (tests/test_layers.c)",
				 g->objects[a]);
			return 1;
		}
	}
	for (int a = 0; a < g->n; a++)
		for (int b = 0; b < g->n; b++)
			if (g->edge[a][b] && layer_of(g->objects[b]) > layer_of(g->objects[a])) {
				snprintf(problem, len, "%s (%s) uses %s of %s (%s)", g->objects[a],
					 layer_names[layer_of(g->objects[a])], g->why[a][b],
					 g->objects[b], layer_names[layer_of(g->objects[b])]);
				return 1;
			}
	return 0;
}

/* Depth-first search for a cycle; writes it as "a -> b -> ... -> a". */
static int find_cycle(const struct graph *g, int at, int *state, int *stack, int depth,
		      char *problem, size_t len)
{
	state[at] = 1;
	stack[depth] = at;
	for (int b = 0; b < g->n; b++) {
		if (!g->edge[at][b])
			continue;
		if (state[b] == 1) {
			size_t off = 0;
			int from = 0;
			while (stack[from] != b)
				from++;
			for (int i = from; i <= depth; i++)
				off += (size_t)snprintf(
					problem + off, off < len ? len - off : 0, "%s (%s) -> ",
					g->objects[stack[i]],
					g->why[stack[i]][i < depth ? stack[i + 1] : b]);
			snprintf(problem + off, off < len ? len - off : 0, "%s", g->objects[b]);
			return 1;
		}
		if (state[b] == 0 && find_cycle(g, b, state, stack, depth + 1, problem, len))
			return 1;
	}
	state[at] = 2;
	return 0;
}

static int check_cycles(const struct graph *g, char *problem, size_t len)
{
	int state[MAX_OBJECTS] = {0}, stack[MAX_OBJECTS];
	for (int a = 0; a < g->n; a++)
		if (state[a] == 0 && find_cycle(g, a, state, stack, 0, problem, len))
			return 1;
	return 0;
}

static struct graph graph;

Test(layers, mm_objects_depend_downwards_only_and_never_in_a_cycle)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "nm -A '%s'", MM_ARCHIVE);
	FILE *nm = popen(cmd, "r");
	cr_assert_not_null(nm);
	graph_read(&graph, nm);
	cr_assert_eq(pclose(nm), 0, "%s failed", cmd);
	cr_assert_geq(graph.n, 20, "read %d objects from %s", graph.n, MM_ARCHIVE);
	char problem[1024] = "";
	cr_assert_eq(check_layers(&graph, problem, sizeof(problem)), 0, "%s", problem);
	cr_assert_eq(check_cycles(&graph, problem, sizeof(problem)), 0, "a cycle: %s", problem);
}

/* The checker on made-up archives: each rule, broken once. */
static void read_text(const char *text)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	cr_assert_not_null(f);
	graph_read(&graph, f);
	fclose(f);
}

Test(layers, the_checker_finds_an_upward_use_a_cycle_and_an_unplaced_object)
{
	char problem[1024];
	read_text("a.a:sept.c.o:0000000000000010 T sept_lookup\n"
		  "a.a:sept.c.o:                 U guest_memory_fail\n"
		  "a.a:guest_memory.c.o:0000000000000020 T guest_memory_fail\n");
	cr_assert_eq(check_layers(&graph, problem, sizeof(problem)), 1);
	cr_assert_str_eq(problem, "sept (physical) uses guest_memory_fail of guest_memory "
				  "(address space)");

	read_text("a.a:reclaim.c.o:0000000000000010 T reclaim_direct\n"
		  "a.a:reclaim.c.o:                 U guest_memory_evict\n"
		  "a.a:guest_swap.c.o:0000000000000020 T guest_memory_evict\n"
		  "a.a:guest_swap.c.o:                 U reclaim_direct\n");
	cr_assert_eq(check_layers(&graph, problem, sizeof(problem)), 0, "%s", problem);
	cr_assert_eq(check_cycles(&graph, problem, sizeof(problem)), 1);
	cr_assert_str_eq(problem, "reclaim (guest_memory_evict) -> guest_swap (reclaim_direct) -> "
				  "reclaim");

	read_text("a.a:newfile.c.o:0000000000000010 T newfile_thing\n");
	cr_assert_eq(check_layers(&graph, problem, sizeof(problem)), 1);
	cr_assert(strstr(problem, "newfile.o is in no layer"), "%s", problem);
}
