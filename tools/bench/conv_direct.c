/* The direct convolution micro-kernels (Sources/CKernels/conv_direct.c) alone on one core: one
 * convolution's input packed and its outputs computed, best of 20 runs, against a Float64 loop
 * (max |error|), in GFLOP/s of the convolution's own work (2·Cout·Cin·k²·OH·OW).
 *
 *   clang -O2 -ffp-contract=off -ISources/CKernels/include tools/bench/conv_direct.c \
 *      Sources/CKernels/conv_direct.c Sources/CKernels/packed_gemm.c -lm -o /tmp/conv_direct
 *   /tmp/conv_direct CIN H COUT K STRIDE PAD KERNEL    (KERNEL: 1 flat AVX-512, 0 flat AVX2,
 *                                                       2 by channels AVX-512, 3 by channels AVX2)
 *   /tmp/conv_direct 3 224 64 7 2 3 1                  (ResNet-18's stem)
 */
#include "ckernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <math.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int cin=atoi(argv[1]),h=atoi(argv[2]),cout=atoi(argv[3]),k=atoi(argv[4]),s=atoi(argv[5]),pad=atoi(argv[6]);
  int avx=atoi(argv[7]); int w=h;
  int oh=(h+2*pad-k)/s+1, ow=oh;
  glassbox_conv_direct c={cin,h,w,cout,oh,ow,s,s,pad,pad,0,0,k*k,0,0,1};
  c.hq=oh+(k-1)/s; c.wq=ow+(k-1)/s;
  c.phases=(k==1&&pad==0)?1:s*s;
  long *off=malloc(sizeof(long)*k*k);
  for(int ky=0;ky<k;ky++)for(int kx=0;kx<k;kx++){int fy=ky%s,fx=kx%s; off[ky*k+kx]=(long)(fy*s+fx)*c.hq*c.wq+(ky/s)*c.wq+kx/s;}
  c.offsets=off;
  float*x=malloc(4L*cin*h*w),*wt=malloc(4L*cout*cin*k*k),*bias=malloc(4*cout),*out=malloc(4L*cout*oh*ow),*ref=malloc(4L*cout*oh*ow);
  for(long i=0;i<(long)cin*h*w;i++)x[i]=(rand()%1000)/500.0-1;
  for(long i=0;i<(long)cout*cin*k*k;i++)wt[i]=(rand()%1000)/500.0-1;
  for(int i=0;i<cout;i++)bias[i]=i*0.01; c.bias=bias;
  long qn=(long)cin*s*s*c.hq*c.wq+64; float*q=calloc(qn,4);
  float*pk=malloc(4L*((cout+15)/16*16)*cin*k*k);
  if(avx>=2) glassbox_conv_channels_pack_weights(wt,cout,cin,k*k,pk); else glassbox_conv_direct_pack_weights(wt,cout,cin,k*k,pk);
  int nb16=(cout+15)/16;
  glassbox_conv_direct_pack(&c,x,q,0,cin);
  int L=oh*c.wq; int blocks=(cout+7)/8;
  if(avx==3) glassbox_conv_channels_avx2(&c,q,pk,out,0,0,nb16,0,oh*ow); else if(avx==2) glassbox_conv_channels_avx512(&c,q,pk,out,0,0,nb16,0,oh*ow); else if(avx) glassbox_conv_direct_avx512(&c,q,pk,out,0,0,blocks,0,L); else glassbox_conv_direct_avx2(&c,q,pk,out,0,0,blocks,0,L);
  double err=0;
  for(int co=0;co<cout;co++)for(int oy=0;oy<oh;oy++)for(int ox=0;ox<ow;ox++){double a=bias[co];
    for(int ci=0;ci<cin;ci++)for(int ky=0;ky<k;ky++)for(int kx=0;kx<k;kx++){int iy=oy*s+ky-pad,ix=ox*s+kx-pad; if(iy<0||ix<0||iy>=h||ix>=w)continue; a+=(double)x[(ci*h+iy)*w+ix]*wt[((co*cin+ci)*k+ky)*k+kx];}
    if(a<0)a=0; double d=fabs(a-out[(co*oh+oy)*ow+ox]); if(d>err)err=d;}
  int reps=20; double best=1e9;
  for(int r=0;r<reps;r++){double t=now(); glassbox_conv_direct_pack(&c,x,q,0,cin);
    if(avx==3) glassbox_conv_channels_avx2(&c,q,pk,out,0,0,nb16,0,oh*ow); else if(avx==2) glassbox_conv_channels_avx512(&c,q,pk,out,0,0,nb16,0,oh*ow); else if(avx) glassbox_conv_direct_avx512(&c,q,pk,out,0,0,blocks,0,L); else glassbox_conv_direct_avx2(&c,q,pk,out,0,0,blocks,0,L);
    t=now()-t; if(t<best)best=t;}
  double fl=2.0*cout*cin*k*k*oh*ow;
  printf("cin %d h %d cout %d k %d s %d: err %.2e  %.3f ms  %.1f GFLOP/s\n",cin,h,cout,k,s,err,best*1e3,fl/best/1e9);
}
