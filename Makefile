# ingressd — see README.md. Plain `make` builds only the library and the binary.
CC       ?= cc
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PKGS     := libevent libevent_openssl libevent_pthreads openssl libpcre2-8 yaml-0.1 liburing
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT      ?= -O2 -g
SAN      ?=
CFLAGS   ?=
CFLAGS   += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) $(SAN) -pthread \
            -Iinclude -I$(LLHTTP_INC) $(PKG_CFLAGS) -MMD -MP
LDLIBS   += $(PKG_LIBS) -pthread -lm

B        ?= build
SRCS     := $(filter-out src/main.c,$(wildcard src/*.c))
OBJS     := $(SRCS:src/%.c=$(B)/obj/%.o)
LLHTTP_OBJS := $(B)/obj/llhttp/llhttp.o $(B)/obj/llhttp/api.o $(B)/obj/llhttp/http.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps run test unit integration integration-noring asan bench clean
all: $(B)/ingressd

$(B)/libingressd.a: $(OBJS) $(LLHTTP_OBJS)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/ingressd: $(B)/obj/main.o $(B)/libingressd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# llhttp is generated C from Debian's node-llhttp; build it without our warning set, in its
# strict mode (loose mode accepts a bare CR where CRLF ends a chunked body: a smuggling vector).
$(B)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c Makefile
	@mkdir -p $(@D)
	$(CC) -std=c17 $(OPT) $(SAN) -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) -c -o $@ $<

$(B)/tests/%: tests/unit/%.c $(B)/libingressd.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libingressd.a $(LDLIBS) -lcriterion

$(B)/bench/%: bench/%.c $(B)/libingressd.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libingressd.a $(LDLIBS)

deps:
	@scripts/install-deps.sh --if-missing

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t --jobs 2; done

integration: $(B)/ingressd $(B)/bench/podserver
	B=$(B) tests/conf/run.sh
	B=$(B) tests/integration/run.sh

asan:
	$(MAKE) B=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" unit integration

# the data-plane files once more with one socket call per read and write
# (the path taken where io_uring is unavailable)
integration-noring: $(B)/ingressd $(B)/bench/podserver
	INGRESSD_IO_URING=0 B=$(B) tests/integration/run.sh 20 21 22 23 26 55

test: deps
	$(MAKE) unit integration
	$(MAKE) integration-noring
	$(MAKE) asan

run: deps
	$(MAKE) all $(B)/bench/podserver
	scripts/run-demo.sh

bench: deps
	$(MAKE) all $(B)/bench/podserver $(B)/bench/bench_route
	bench/run.sh

clean:
	rm -rf build build-asan

-include $(wildcard $(B)/obj/*.d $(B)/tests/*.d)
