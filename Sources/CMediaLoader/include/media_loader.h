#ifndef GLASSBOX_MEDIA_LOADER_H
#define GLASSBOX_MEDIA_LOADER_H

/* Opens FFmpeg and libsndfile (once; later calls return at once). NULL when they are loaded,
 * else why not, naming the Debian package to install. Any media call loads them too, and
 * exits with that message where they are missing. */
const char *glassbox_media_load(void);

#endif
