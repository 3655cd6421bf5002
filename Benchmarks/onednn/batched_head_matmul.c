// Per-head attention GEMMs in bf16 as Loom runs them (one oneDNN matmul execution per head, the
// argument memory objects repointed per call) against one batched matmul over all heads, one
// thread: time per head and whether the two give the same bits. Default shape: the study's
// S = Q·Kᵀ per head (64 tokens, head dimension 32, 128 = batch 32 × 4 heads); `M N K transB` picks
// another, e.g. `64 32 64 0` for P·V.
//
//   clang -O2 Benchmarks/onednn/batched_head_matmul.c -o .build/batched-head-matmul -ldnnl
//   OMP_NUM_THREADS=1 .build/batched-head-matmul [M N K transB]
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static uint16_t bf(float x){uint32_t u;memcpy(&u,&x,4);return (uint16_t)((u+0x7FFFu+((u>>16)&1u))>>16);}
#define CHK(x) do{dnnl_status_t s=(x); if(s!=dnnl_success){printf("err %d at %s\n",s,#x);exit(1);}}while(0)
static dnnl_primitive_t make(dnnl_engine_t eng, int batch, int M, int N, int K, int transB, dnnl_memory_desc_t *md) {
  // A [batch, M, K] row-major, B [batch, K, N] (transB: stored [batch, N, K]), C [batch, M, N] f32
  if (batch == 1) {
    dnnl_dims_t ad={M,K}, bd={K,N}, cd={M,N};
    dnnl_dims_t as={K,1}, bs; if(transB){bs[0]=1;bs[1]=K;}else{bs[0]=N;bs[1]=1;}
    dnnl_dims_t cs={N,1};
    CHK(dnnl_memory_desc_init_by_strides(&md[0],2,ad,dnnl_bf16,as));
    CHK(dnnl_memory_desc_init_by_strides(&md[1],2,bd,dnnl_bf16,bs));
    CHK(dnnl_memory_desc_init_by_strides(&md[2],2,cd,dnnl_f32,cs));
  } else {
    dnnl_dims_t ad={batch,M,K}, bd={batch,K,N}, cd={batch,M,N};
    dnnl_dims_t as={M*K,K,1}, bs; if(transB){bs[0]=N*K;bs[1]=1;bs[2]=K;}else{bs[0]=K*N;bs[1]=N;bs[2]=1;}
    dnnl_dims_t cs={M*N,N,1};
    CHK(dnnl_memory_desc_init_by_strides(&md[0],3,ad,dnnl_bf16,as));
    CHK(dnnl_memory_desc_init_by_strides(&md[1],3,bd,dnnl_bf16,bs));
    CHK(dnnl_memory_desc_init_by_strides(&md[2],3,cd,dnnl_f32,cs));
  }
  dnnl_matmul_desc_t d; CHK(dnnl_matmul_desc_init(&d,&md[0],&md[1],NULL,&md[2])); dnnl_primitive_desc_t pd; CHK(dnnl_primitive_desc_create(&pd,&d,NULL,eng,NULL));
  const char *impl; dnnl_primitive_desc_query(pd,dnnl_query_impl_info_str,0,&impl); printf("batch %d: %s\n",batch,impl);
  dnnl_primitive_t p; CHK(dnnl_primitive_create(&p,pd)); dnnl_primitive_desc_destroy(pd); return p;
}
int main(int argc,char**argv){
  int H=128, M=64, N=64, K=32, transB=1; if(argc>1){M=atoi(argv[1]);N=atoi(argv[2]);K=atoi(argv[3]);transB=atoi(argv[4]);}
  dnnl_engine_t eng; CHK(dnnl_engine_create(&eng,dnnl_cpu,0)); dnnl_stream_t st; CHK(dnnl_stream_create(&st,eng,dnnl_stream_default_flags));
  uint16_t *A=malloc(2*H*M*K), *B=malloc(2*H*K*N); float *C1=malloc(4*H*M*N), *C2=malloc(4*H*M*N);
  srand(1); for(int i=0;i<H*M*K;i++)A[i]=bf((float)rand()/RAND_MAX-0.5f); for(int i=0;i<H*K*N;i++)B[i]=bf((float)rand()/RAND_MAX-0.5f);
  dnnl_memory_desc_t m1[3], mB[3]; dnnl_primitive_t p1=make(eng,1,M,N,K,transB,m1), pB=make(eng,H,M,N,K,transB,mB);
  dnnl_memory_t a1,b1,c1,aB,bB,cB;
  CHK(dnnl_memory_create(&a1,&m1[0],eng,A));CHK(dnnl_memory_create(&b1,&m1[1],eng,B));CHK(dnnl_memory_create(&c1,&m1[2],eng,C1));
  CHK(dnnl_memory_create(&aB,&mB[0],eng,A));CHK(dnnl_memory_create(&bB,&mB[1],eng,B));CHK(dnnl_memory_create(&cB,&mB[2],eng,C2));
  for(int round=0;round<5;round++){
    double t0=now();
    for(int rep=0;rep<20;rep++) for(int h=0;h<H;h++){
      dnnl_memory_set_data_handle(a1,A+h*M*K); dnnl_memory_set_data_handle(b1,B+h*K*N); dnnl_memory_set_data_handle(c1,C1+h*M*N);
      dnnl_exec_arg_t args[3]={{DNNL_ARG_SRC,a1},{DNNL_ARG_WEIGHTS,b1},{DNNL_ARG_DST,c1}};
      CHK(dnnl_primitive_execute(p1,st,3,args)); }
    double t1=now();
    for(int rep=0;rep<20;rep++){ dnnl_exec_arg_t args[3]={{DNNL_ARG_SRC,aB},{DNNL_ARG_WEIGHTS,bB},{DNNL_ARG_DST,cB}}; CHK(dnnl_primitive_execute(pB,st,3,args)); }
    double t2=now();
    printf("%dx%dx%d transB %d: per-head %.1f us/head, batched %.1f us/head, bits equal %d\n",M,N,K,transB,(t1-t0)/20/H*1e6,(t2-t1)/20/H*1e6,memcmp(C1,C2,4*H*M*N)==0);
  }
}
