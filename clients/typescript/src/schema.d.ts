/**
 * Generated from the repository's openapi.json by `npm run generate` (openapi-typescript):
 * do not edit. A test fails when openapi.json changes and this file is not regenerated.
 * openapi.json sha256: edb9feccbd026d3e0c702bbca83dd7341ac877badef69efa45cb33b01a2dd836
 */
export interface paths {
    "/encode": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Encode
         * @description Images -> per image the posterior mean `mu` and standard deviation `sigma`.
         *
         *     With `samples` > 0, also that many draws z ~ q(z|x) per image. Send `Accept: application/x-npy`
         *     to get a float32 array [N, 2, D] (mu, sigma) instead of JSON.
         */
        post: operations["encode_encode_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/decode": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Decode
         * @description Latent vectors -> images (`format`: png, array or npy).
         *
         *     A spatial model (kind autoencoder) takes latents [N,C,h,w] as nested lists, .npy or raw
         *     bytes (`Content-Type: application/octet-stream`, query `shape`, `dtype`; `height`, `width`
         *     for packed latents) and gives png, jpeg, raw (uint8 [N,H,W,C]), array or npy.
         *
         *     A video model (kind video_autoencoder) takes one clip's latents [C,T,h,w] or clips
         *     [N,C,T,h,w] the same ways (query or JSON `fps`, `normalized` for a pipeline's latents) and
         *     gives mp4 (`video/mp4`, H.264, streamed as the clip is decoded; one clip), npy (float32
         *     frames in [0,1], [F,C,H,W] or [N,F,C,H,W]), raw (uint8 [F,H,W,C] or [N,F,H,W,C]) or png
         *     (JSON `frames`, or `clips`), with headers X-VAE-Frames and X-VAE-FPS.
         */
        post: operations["decode_decode_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/sample": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Sample
         * @description `n` draws from the prior N(0, temperature^2 I), decoded. The same `seed` gives the same images.
         *
         *     A vqvae draws code grids from its PixelCNN prior instead (logits divided by `temperature`,
         *     the most likely codes at 0) and returns them as `codes` beside their codebook vectors.
         */
        post: operations["sample_sample_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/interpolate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Interpolate
         * @description A path of `steps` points from `start` to `end` (images are encoded to their mean), by
         *     `method` lerp or slerp, decoded.
         */
        post: operations["interpolate_interpolate_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/remote/{model}/decode": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Remote Decode
         * @description Latents (raw bytes) -> an image file or a tensor, as `diffusers.utils.remote_decode`
         *     expects.
         */
        post: operations["remote_decode_remote__model__decode_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/remote/{model}/encode": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Remote Encode
         * @description An image (PNG bytes) or a raw tensor in the model's range -> the latent mean, shifted
         *     and scaled when asked, as `diffusers.utils.remote_encode` expects.
         */
        post: operations["remote_encode_remote__model__encode_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/models": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List Models
         * @description Every model with its versions and manifests, and which model answers by default.
         */
        get: operations["list_models_models_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/models/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get Model
         * @description One model: its versions, their manifests, and the execution provider in use.
         */
        get: operations["get_model_models__name__get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/models/{name}/versions/{version}/report/{figure}.png": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Report Figure
         * @description A report figure: reconstructions, samples, interpolation or latent_map.
         */
        get: operations["report_figure_models__name__versions__version__report__figure__png_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/models/{name}/default": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Set Default
         * @description Makes `{"version": V}` the version that answers for `name` (admin).
         */
        post: operations["set_default_models__name__default_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/models/{name}/versions/{version}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /**
         * Delete Version
         * @description Deletes a version (admin). The default version cannot be deleted while others exist.
         */
        delete: operations["delete_version_models__name__versions__version__delete"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/datasets/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get Dataset
         * @description One dataset's manifest: count, shape, channels, value range, labels, sha256.
         */
        get: operations["get_dataset_datasets__name__get"];
        /**
         * Put Dataset
         * @description Stores the body as dataset `name` and answers its manifest (admin).
         */
        put: operations["put_dataset_datasets__name__put"];
        post?: never;
        /**
         * Delete Dataset
         * @description Deletes a dataset (admin); 409 while a queued or running job trains on it.
         */
        delete: operations["delete_dataset_datasets__name__delete"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/datasets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List Datasets
         * @description Every stored dataset's manifest.
         */
        get: operations["list_datasets_datasets_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/jobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List Jobs
         * @description Every job, newest first.
         */
        get: operations["list_jobs_jobs_get"];
        put?: never;
        /**
         * Submit Job
         * @description Queues training of `name` on `dataset` (admin). Every config field has a default.
         */
        post: operations["submit_job_jobs_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/jobs/{job_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get Job
         * @description Status (queued, running, succeeded, failed, cancelled), progress, result and error.
         */
        get: operations["get_job_jobs__job_id__get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/jobs/{job_id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Cancel Job
         * @description Cancels a queued job, or stops a running one within seconds (admin).
         */
        post: operations["cancel_job_jobs__job_id__cancel_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Server Metadata
         * @description Server metadata: name, version and the protocol extensions served.
         */
        get: operations["server_metadata_v2_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2/models/{model}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Model Metadata
         * @description A graph's metadata (`<name>.encoder` or `<name>.decoder`; the default version's): its
         *     versions, inputs and outputs with datatypes and shapes (-1 for a free size).
         */
        get: operations["model_metadata_v2_models__model__get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2/models/{model}/versions/{version}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Version Metadata
         * @description A graph's metadata at one version.
         */
        get: operations["version_metadata_v2_models__model__versions__version__get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2/models/{model}/versions/{version}/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Version Ready
         * @description Whether this version of the graph (`<name>.encoder` or `<name>.decoder`) is loaded and
         *     answering: 200, or 503 while it is not.
         */
        get: operations["version_ready_v2_models__model__versions__version__ready_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2/models/{model}/infer": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Infer
         * @description Runs the graph's default version on the request's tensors (JSON, or binary after the
         *     JSON header with `Inference-Header-Content-Length`).
         */
        post: operations["infer_v2_models__model__infer_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2/models/{model}/versions/{version}/infer": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Version Infer
         * @description Runs one version of the graph.
         */
        post: operations["version_infer_v2_models__model__versions__version__infer_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2/health/live": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Live
         * @description The process answers.
         */
        get: operations["live_v2_health_live_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2/health/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Ready
         * @description Ready once the default model is loaded and warmed up; the latent cache and the model
         *     repository may be degraded (an unreachable object store: serving what the replica cached).
         */
        get: operations["ready_v2_health_ready_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v2/models/{name}/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Model Ready
         * @description Whether `name` (or `name:version`) is loaded and answering.
         */
        get: operations["model_ready_v2_models__name__ready_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /**
         * CancelOutcome
         * @description What a cancel did: `cancelled` (nothing is or will be published), `too_late` (the job had
         *     passed its commit point: published, or publishing, as `version`), or `ended` (the job had
         *     already failed or been cancelled).
         */
        CancelOutcome: {
            /**
             * Outcome
             * @enum {string}
             */
            outcome: "cancelled" | "too_late" | "ended";
            /** Message */
            message: string;
            /** Version */
            version?: number | null;
        };
        /**
         * DefaultVersion
         * @description POST /models/{name}/default: the version that answers from now on.
         */
        DefaultVersion: {
            /** Version */
            version: number;
        };
        /**
         * EncodeResponse
         * @description Per image: mu, sigma, optional z draws, and whether the cache answered.
         */
        EncodeResponse: {
            /** Model */
            model: string;
            /** Version */
            version: number;
            /** Latents */
            latents: components["schemas"]["LatentOut"][];
        };
        /**
         * Endpoint
         * @description One end of an interpolation: an image (base64), a pixel array, or a latent vector.
         */
        Endpoint: {
            /** Image */
            image?: string | null;
            /** Array */
            array?: unknown[] | null;
            /**
             * Latent
             * @description a latent vector, or a spatial model's grid [C][h][w]
             */
            latent?: number[] | number[][][] | null;
            /**
             * Codes
             * @description a vqvae's code grid, h x w
             */
            codes?: number[][] | null;
        };
        /**
         * ImagesResponse
         * @description Images as base64 PNG (`images`) or as arrays (`arrays`), with the latents behind them.
         */
        ImagesResponse: {
            /** Model */
            model: string;
            /** Version */
            version: number;
            /** Images */
            images?: string[] | null;
            /** Arrays */
            arrays?: unknown[] | null;
            /** Latents */
            latents?: number[][] | null;
            /** Codes */
            codes?: number[][][] | null;
            /** Seed */
            seed?: number | null;
        };
        /**
         * InterpolateRequest
         * @description A path through latent space between two points, decoded.
         */
        InterpolateRequest: {
            /**
             * Model
             * @description 'name' or 'name:version'; the default model when left out
             */
            model?: string | null;
            start: components["schemas"]["Endpoint"];
            end: components["schemas"]["Endpoint"];
            /**
             * Steps
             * @default 8
             */
            steps?: number;
            /**
             * Method
             * @default slerp
             * @enum {string}
             */
            method?: "lerp" | "slerp";
            /**
             * Format
             * @default png
             * @enum {string}
             */
            format?: "png" | "array" | "jpeg";
            /** Label */
            label?: number | null;
        };
        /**
         * JobInfo
         * @description GET /jobs/{id}.
         */
        JobInfo: {
            /** Id */
            id: string;
            /**
             * Status
             * @enum {string}
             */
            status: "queued" | "running" | "succeeded" | "failed" | "cancelled";
            /** Dataset */
            dataset: string;
            /** Name */
            name: string;
            /** Config */
            config: {
                [key: string]: unknown;
            };
            /**
             * Make Default
             * @description whether the new version becomes the one that answers for its name
             * @default true
             */
            make_default?: boolean;
            /** Progress */
            progress?: {
                [key: string]: unknown;
            };
            /**
             * Result
             * @description model, version, metrics; default_error when the version was published but DEFAULT could not be moved to it
             */
            result?: {
                [key: string]: unknown;
            } | null;
            /** Error */
            error?: string | null;
            /** @description what a cancel did, once one was asked for */
            cancel?: components["schemas"]["CancelOutcome"] | null;
            /** Created At */
            created_at: string;
            /** Started At */
            started_at?: string | null;
            /** Ended At */
            ended_at?: string | null;
        };
        /**
         * JobRequest
         * @description POST /jobs: train `name` on `dataset` with `config` (every field has a default).
         */
        JobRequest: {
            /**
             * Dataset
             * @description a stored dataset's name
             */
            dataset: string;
            /**
             * Name
             * @description the model name the new version is published under
             */
            name: string;
            config?: components["schemas"]["TrainConfig"];
            /**
             * Make Default
             * @description make the new version the one that answers
             * @default true
             */
            make_default?: boolean;
        };
        /**
         * LatentOut
         * @description One image's posterior (a vqvae gives `codes` and `z_e` instead of mu and sigma).
         */
        LatentOut: {
            /** Mu */
            mu?: number[] | null;
            /** Sigma */
            sigma?: number[] | null;
            /** Z */
            z?: number[][] | null;
            /** Codes */
            codes?: number[][] | null;
            /** Z E */
            z_e?: number[] | null;
            /** Cached */
            cached: boolean;
        };
        /**
         * SampleRequest
         * @description Draws from the prior N(0, temperature^2 I), decoded.
         */
        SampleRequest: {
            /**
             * Model
             * @description 'name' or 'name:version'; the default model when left out
             */
            model?: string | null;
            /**
             * N
             * @default 8
             */
            n?: number;
            /**
             * Temperature
             * @default 1
             */
            temperature?: number;
            /** Seed */
            seed?: number | null;
            /** Label */
            label?: number | null;
            /**
             * Format
             * @default png
             * @enum {string}
             */
            format?: "png" | "array";
        };
        /**
         * TrainConfig
         * @description Everything that decides what a training run produces. Every field has a usable default.
         */
        TrainConfig: {
            /**
             * Kind
             * @description vae; cvae (conditioned on labels); hvae (two stochastic layers, ladder); vqvae (a discrete code grid with a learned autoregressive prior)
             * @default vae
             * @enum {string}
             */
            kind?: "vae" | "cvae" | "hvae" | "vqvae";
            /**
             * Arch
             * @default mlp
             * @enum {string}
             */
            arch?: "mlp" | "conv";
            /**
             * Latent Dim
             * @description z (for hvae: the top layer)
             * @default 32
             */
            latent_dim?: number;
            /**
             * Bottom Latent Dim
             * @description hvae: the lower layer z1
             * @default 32
             */
            bottom_latent_dim?: number;
            /** Hidden */
            hidden?: number[];
            /**
             * Activation
             * @default elu
             * @enum {string}
             */
            activation?: "relu" | "elu" | "gelu" | "tanh";
            /** Conv Channels */
            conv_channels?: number[];
            /**
             * Conv Fc
             * @default 256
             */
            conv_fc?: number;
            /**
             * Likelihood
             * @default bernoulli
             * @enum {string}
             */
            likelihood?: "bernoulli" | "gaussian";
            /**
             * Binarize
             * @description dynamic: resample binary pixels from intensities every batch (Bernoulli only)
             * @default dynamic
             * @enum {string}
             */
            binarize?: "dynamic" | "none";
            /**
             * Num Embeddings
             * @description vqvae: codebook size K
             * @default 128
             */
            num_embeddings?: number;
            /**
             * Embedding Dim
             * @description vqvae: code vector size D
             * @default 16
             */
            embedding_dim?: number;
            /**
             * Commitment Cost
             * @description vqvae: weight of the commitment loss
             * @default 0.25
             */
            commitment_cost?: number;
            /**
             * Ema Decay
             * @description vqvae: codebook EMA decay
             * @default 0.99
             */
            ema_decay?: number;
            /**
             * Dead Code Patience
             * @description vqvae: a code unused for this many batches is re-seeded
             * @default 1
             */
            dead_code_patience?: number;
            /**
             * Prior Epochs
             * @description vqvae: epochs of the PixelCNN prior
             * @default 10
             */
            prior_epochs?: number;
            /**
             * Prior Channels
             * @description vqvae: PixelCNN width
             * @default 64
             */
            prior_channels?: number;
            /**
             * Prior Layers
             * @description vqvae: gated PixelCNN layers
             * @default 6
             */
            prior_layers?: number;
            /**
             * Objective
             * @description elbo: the evidence lower bound (analytic KL); iwae: the importance-weighted bound with iwae_k posterior draws an image (Burda et al. 2015)
             * @default elbo
             * @enum {string}
             */
            objective?: "elbo" | "iwae";
            /**
             * Iwae K
             * @description objective iwae: draws an image
             * @default 5
             */
            iwae_k?: number;
            /**
             * Epochs
             * @default 10
             */
            epochs?: number;
            /**
             * Batch Size
             * @default 128
             */
            batch_size?: number;
            /**
             * Lr
             * @default 0.001
             */
            lr?: number;
            /**
             * Lr Schedule
             * @default cosine
             * @enum {string}
             */
            lr_schedule?: "constant" | "cosine";
            /**
             * Beta
             * @default 1
             */
            beta?: number;
            /**
             * Kl Warmup Epochs
             * @default 0
             */
            kl_warmup_epochs?: number;
            /**
             * Free Bits
             * @description minimum KL nats per latent dim
             * @default 0
             */
            free_bits?: number;
            /**
             * Seed
             * @default 0
             */
            seed?: number;
            /**
             * Max Seconds
             * @description stop training after this long
             */
            max_seconds?: number | null;
            /**
             * Holdout
             * @description held-out images: a fraction (< 1) or a count (>= 1)
             * @default 0.1
             */
            holdout?: number;
            /**
             * Eval K
             * @description importance samples for the IWAE bound
             * @default 1000
             */
            eval_k?: number;
            /**
             * Quality
             * @description score samples with a classifier trained on the labels (labelled data)
             * @default true
             */
            quality?: boolean;
            /**
             * Eval Images
             * @description held-out images the IWAE bound is computed on (all when unset)
             */
            eval_images?: number | null;
        };
        /**
         * DecodeRequest
         * @description Latent vectors (or, for a vqvae, grids of code indices) to turn into images; a video
         *     model's latent clips to turn into clips.
         */
        DecodeRequest: {
            /**
             * Model
             * @description 'name' or 'name:version'; the default model when left out
             * @default null
             */
            model?: string | null;
            /**
             * Latents
             * @description [N][D] vectors; a spatial model's [N][C][h][w] grids; a video model's one clip [C][T][h][w] or clips [N][C][T][h][w]
             * @default null
             */
            latents?: (number[][] | number[][][] | number[][][][] | number[][][][][]) | null;
            /**
             * Codes
             * @description a vqvae's code grids, N x h x w indices into the codebook
             * @default null
             */
            codes?: number[][][] | null;
            /**
             * Format
             * @description png, array, npy, jpeg or raw for images (default png, or what Accept asks for); mp4, npy, raw or png for a video model (default mp4)
             * @default null
             */
            format?: ("png" | "array" | "npy" | "jpeg" | "raw" | "mp4") | null;
            /**
             * Label
             * @default null
             */
            label?: number | null;
            /**
             * Fps
             * @description a video model's frames per second (default: the model's)
             * @default null
             */
            fps?: number | null;
            /**
             * Normalized
             * @description a video model's latents as a diffusion pipeline holds them (normalised and scaled): the model's normalisation is undone before decoding
             * @default false
             */
            normalized?: boolean;
        };
        /**
         * EncodeRequest
         * @description Images as base64 PNG/JPEG (`images`) or as pixel arrays in [0,1] (`arrays`).
         */
        EncodeRequest: {
            /**
             * Model
             * @description 'name' or 'name:version'; the default model when left out
             * @default null
             */
            model?: string | null;
            /**
             * Images
             * @description base64 PNG or JPEG images
             * @default null
             */
            images?: string[] | null;
            /**
             * Arrays
             * @description images as nested lists [C][H][W], [H][W] or [H][W][C]
             * @default null
             */
            arrays?: unknown[] | null;
            /**
             * Samples
             * @description draws of z ~ q(z|x) to return per image
             * @default 0
             */
            samples?: number;
            /**
             * Seed
             * @description seed for the z draws
             * @default null
             */
            seed?: number | null;
            /**
             * Label
             * @description the class, for a conditional model
             * @default null
             */
            label?: number | null;
            /**
             * Layers
             * @description a hierarchical model's lower layer too, with 'all'
             * @default top
             * @enum {string}
             */
            layers?: "top" | "all";
        };
        /**
         * ErrorResponse
         * @description Every error: a message a person can act on.
         */
        ErrorResponse: {
            /** Error */
            error: string;
            /** Message */
            message: string;
            /**
             * Detail
             * @default null
             */
            detail?: unknown;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    encode_encode_post: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["EncodeRequest"];
                "application/x-npy": string;
                "video/mp4": string;
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EncodeResponse"];
                    "application/x-npy": string;
                };
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unknown model */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unsupported media type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description rate limited, or the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description deadline passed, queued or computing (the message says which setting to raise) */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    decode_decode_post: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DecodeRequest"];
                "application/x-npy": string;
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImagesResponse"];
                    "application/x-npy": string;
                    "video/mp4": string;
                };
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unknown model */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unsupported media type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description rate limited, or the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description deadline passed, queued or computing (the message says which setting to raise) */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    sample_sample_post: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SampleRequest"];
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImagesResponse"];
                };
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unknown model */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unsupported media type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description rate limited, or the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description deadline passed, queued or computing (the message says which setting to raise) */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    interpolate_interpolate_post: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["InterpolateRequest"];
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImagesResponse"];
                };
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unknown model */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unsupported media type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description rate limited, or the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description deadline passed, queued or computing (the message says which setting to raise) */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    remote_decode_remote__model__decode_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                model: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/octet-stream": string;
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                    "application/octet-stream": string;
                };
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description no admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description wrong admin token */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unknown model */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description rate limited, or the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description deadline passed, queued or computing (the message says which setting to raise) */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    remote_encode_remote__model__encode_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                model: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/octet-stream": string;
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                    "application/octet-stream": string;
                };
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description no admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description wrong admin token */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unknown model */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description rate limited, or the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description deadline passed, queued or computing (the message says which setting to raise) */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    list_models_models_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
        };
    };
    get_model_models__name__get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    report_figure_models__name__versions__version__report__figure__png_get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                name: string;
                version: number;
                figure: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "image/png": unknown;
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    set_default_models__name__default_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                name: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DefaultVersion"];
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description no admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description wrong admin token */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description conflict */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unsupported media type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    delete_version_models__name__versions__version__delete: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                name: string;
                version: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description no admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description wrong admin token */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description conflict */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    get_dataset_datasets__name__get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description a fault of the server (a stored file it cannot read, or a bug); the message says which */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    put_dataset_datasets__name__put: {
        parameters: {
            query?: {
                /** @description WxH: resize every image of a zip of images */
                resize?: string | null;
                /** @description convert every image of a zip of images to 1, 2, 3 or 4 channels */
                channels?: number | null;
            };
            header?: never;
            path: {
                name: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /** @example a zip of PNG/JPEG images (class subfolders = labels), an .npz (images, optional labels), an .npy, an IDX images file (optionally gzipped), or a zip of an IDX images file and its labels file */
                "application/octet-stream": string;
            };
        };
        responses: {
            /** @description Successful Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description the upload ended early */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description no admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description wrong admin token */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description the name is taken */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not a usable dataset */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description rate limited, or the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    delete_dataset_datasets__name__delete: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description no admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description wrong admin token */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unknown dataset */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description a queued or running job uses it */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    list_datasets_datasets_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    list_jobs_jobs_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobInfo"][];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    submit_job_jobs_post: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["JobRequest"];
            };
        };
        responses: {
            /** @description Successful Response */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobInfo"];
                };
            };
            /** @description malformed body */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description no admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description wrong admin token */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unknown dataset */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description unsupported media type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description rate limited, or the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    get_job_jobs__job_id__get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobInfo"];
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    cancel_job_jobs__job_id__cancel_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobInfo"];
                };
            };
            /** @description no admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description wrong admin token */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not available now (see Retry-After where given) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    server_metadata_v2_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
        };
    };
    model_metadata_v2_models__model__get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                model: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description not an Open Inference Protocol request (the error says why) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description unknown model, graph or version */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description tensors this model cannot take */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description the model is not available now */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description deadline passed */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
        };
    };
    version_metadata_v2_models__model__versions__version__get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                model: string;
                version: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description not an Open Inference Protocol request (the error says why) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description unknown model, graph or version */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description tensors this model cannot take */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description the model is not available now */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description deadline passed */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
        };
    };
    version_ready_v2_models__model__versions__version__ready_get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                model: string;
                version: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not ready yet */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @constant */
                        ready: false;
                    };
                };
            };
        };
    };
    infer_v2_models__model__infer_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                model: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": Record<string, never>;
                "application/octet-stream": string;
            };
        };
        responses: {
            /** @description inference response: JSON, or (binary outputs) the JSON first, its length in Inference-Header-Content-Length, then the tensors */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                    "application/octet-stream": string;
                };
            };
            /** @description not an Open Inference Protocol request (the error says why) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description unknown model, graph or version */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description tensors this model cannot take */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description the model is not available now */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description deadline passed */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
        };
    };
    version_infer_v2_models__model__versions__version__infer_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                model: string;
                version: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": Record<string, never>;
                "application/octet-stream": string;
            };
        };
        responses: {
            /** @description inference response: JSON, or (binary outputs) the JSON first, its length in Inference-Header-Content-Length, then the tensors */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                    "application/octet-stream": string;
                };
            };
            /** @description not an Open Inference Protocol request (the error says why) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description unknown model, graph or version */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description tensors this model cannot take */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description the batch queue is full (see Retry-After) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description the model is not available now */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
            /** @description deadline passed */
            504: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                    };
                };
            };
        };
    };
    live_v2_health_live_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
        };
    };
    ready_v2_health_ready_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description not ready yet */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @constant */
                        ready: false;
                    };
                };
            };
        };
    };
    model_ready_v2_models__name__ready_get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
            /** @description not found */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description invalid input */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description not ready yet */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @constant */
                        ready: false;
                    };
                };
            };
        };
    };
}
